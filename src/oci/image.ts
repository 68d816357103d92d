import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import {
  PassThrough,
  pipeline,
  type Readable,
  Transform,
  type TransformCallback,
  Writable,
} from "node:stream";
import { pipeline as pipelineAsync } from "node:stream/promises";

const noop = () => {};

import { KairosError } from "../sys/index.js";
import { AutoDecompress } from "./compression.js";
import { DigestMismatchError, isDigest, sha256, VerifyingStream } from "./digest.js";
import { formatPlatform, platformMatches } from "./reference.js";
import {
  type BlobOrigin,
  type Descriptor,
  type Image,
  type ImageConfig,
  type ImageIndex,
  INDEX_TYPES,
  type Layer,
  MANIFEST_TYPES,
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  type Manifest,
  MediaType,
  type Platform,
} from "./types.js";
import { CountingStream, READ_CHUNK, RUN_AHEAD } from "./util.js";

/** Opens a blob's raw stream (unverified; the caller verifies). */
export type BlobOpener = (desc: Descriptor) => Promise<Readable>;

/** Parse JSON from a manifest/index/config blob, with a clear error naming what it was. */
export function parseJson<T>(bytes: Buffer, what: string): T {
  try {
    const v = JSON.parse(bytes.toString("utf8")) as unknown;
    if (typeof v !== "object" || v === null || Array.isArray(v)) throw new Error("not a JSON object");
    return v as T;
  } catch (e) {
    throw new KairosError(
      `${what} is not valid JSON: ${(e as Error).message}`,
      "the source is corrupt or not an image",
    );
  }
}

/** The media type of a manifest or index: its own field, else the transport's, else guessed from its shape. */
export function detectMediaType(bytes: Buffer, declared: string | undefined, what: string): string {
  const doc = parseJson<{
    mediaType?: unknown;
    manifests?: unknown;
    config?: unknown;
    schemaVersion?: unknown;
  }>(bytes, what);
  let mt = typeof doc.mediaType === "string" ? doc.mediaType : undefined;
  const decl = declared?.split(";")[0]?.trim();
  if (!mt && decl && [...MANIFEST_TYPES, ...INDEX_TYPES].includes(decl)) mt = decl;
  if (!mt && doc.schemaVersion === 2) {
    if (Array.isArray(doc.manifests)) mt = INDEX_TYPES[0];
    else if (doc.config) mt = MANIFEST_TYPES[0];
  }
  if (!mt || ![...MANIFEST_TYPES, ...INDEX_TYPES].includes(mt)) {
    throw new KairosError(
      `${what} has unsupported media type '${mt ?? decl ?? "none"}'`,
      `supported: ${[...MANIFEST_TYPES, ...INDEX_TYPES].join(", ")} (Docker schema 1 is not supported)`,
    );
  }
  return mt;
}

export function isIndexType(mt: string): boolean {
  return INDEX_TYPES.includes(mt);
}

function checkDescriptor(d: unknown, what: string): Descriptor {
  const x = d as Descriptor;
  if (
    !x ||
    typeof x.mediaType !== "string" ||
    typeof x.digest !== "string" ||
    !isDigest(x.digest) ||
    !Number.isSafeInteger(x.size) ||
    x.size < 0
  ) {
    throw new KairosError(`${what}: invalid descriptor ${JSON.stringify(d)?.slice(0, 200)}`);
  }
  return x;
}

/** Parse and check an image manifest. */
export function parseManifest(bytes: Buffer, what: string): Manifest {
  const m = parseJson<Manifest>(bytes, what);
  if (m.schemaVersion !== 2) throw new KairosError(`${what}: schemaVersion ${m.schemaVersion}, expected 2`);
  checkDescriptor(m.config, `${what} config`);
  if (!Array.isArray(m.layers)) throw new KairosError(`${what}: no layers array`);
  m.layers.forEach((l, i) => {
    checkDescriptor(l, `${what} layer ${i}`);
  });
  return m;
}

/** Parse and check an index / manifest list. */
export function parseIndex(bytes: Buffer, what: string): ImageIndex {
  const x = parseJson<ImageIndex>(bytes, what);
  if (!Array.isArray(x.manifests)) throw new KairosError(`${what}: no manifests array`);
  x.manifests.forEach((d, i) => {
    checkDescriptor(d, `${what} entry ${i}`);
  });
  return x;
}

/** Pick the entry of an index for a platform; the error lists what is available. */
export function selectPlatform(index: ImageIndex, want: Platform, what: string): Descriptor {
  const candidates = index.manifests.filter(
    (d) => MANIFEST_TYPES.includes(d.mediaType) || INDEX_TYPES.includes(d.mediaType),
  );
  const hit = candidates.find((d) => platformMatches(d.platform, want));
  if (hit) return hit;
  // An index with a single image and no platform info (e.g. an oci layout written by a tool).
  if (candidates.length === 1 && !candidates[0]!.platform) return candidates[0]!;
  const avail = candidates.map((d) => formatPlatform(d.platform));
  throw new KairosError(
    `${what} has no image for platform ${formatPlatform(want)}`,
    avail.length
      ? `available platforms: ${[...new Set(avail)].join(", ")}; choose one with --platform`
      : "the index is empty",
  );
}

/** Parse and check a config against the manifest's layer count. */
export function parseConfig(bytes: Buffer, layerCount: number, what: string): ImageConfig {
  if (bytes.length > MAX_CONFIG_BYTES)
    throw new KairosError(`${what} is larger than ${MAX_CONFIG_BYTES} bytes`);
  const c = parseJson<ImageConfig>(bytes, what);
  const ids = c.rootfs?.diff_ids;
  if (!Array.isArray(ids) || ids.some((d) => typeof d !== "string" || !isDigest(d))) {
    throw new KairosError(`${what}: rootfs.diff_ids missing or invalid`);
  }
  if (ids.length !== layerCount) {
    throw new KairosError(
      `${what}: ${ids.length} diff_ids for ${layerCount} layers`,
      "the image is inconsistent",
    );
  }
  return c;
}

/**
 * Passes a compressed blob through unchanged while a copy is decompressed and hashed against
 * the diff id, so that a blob that is copied (never unpacked) is checked for both digests.
 * The stream ends only after the diff id matched; the decompression runs in zlib's thread pool
 * (or a zstd child), beside the copy, on the same bytes: no second read.
 */
class DiffIdTap extends Transform {
  private readonly input: AutoDecompress;
  private readonly checked: Promise<void>;
  constructor(diffId: string, what: string) {
    super(RUN_AHEAD);
    this.input = new AutoDecompress(RUN_AHEAD);
    const discard = new Writable({ write: (_c, _e, cb) => cb() });
    this.checked = pipelineAsync(this.input, new VerifyingStream({ digest: diffId }, what), discard);
    // Reported at the end (_flush), after the blob's own digest was checked upstream.
    this.checked.catch(() => {});
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    const input = this.input;
    if (input.destroyed || input.write(chunk)) {
      cb(null, chunk);
      return;
    }
    const go = () => {
      input.off("drain", go);
      input.off("close", go);
      cb(null, chunk);
    };
    input.on("drain", go);
    input.on("close", go);
  }
  override _flush(cb: TransformCallback): void {
    this.input.end();
    this.checked.then(() => cb(), cb);
  }
  override _destroy(err: Error | null, cb: (e: Error | null) => void): void {
    this.input.destroy();
    cb(err);
  }
}

function isPlainTar(mediaType: string): boolean {
  return mediaType === MediaType.OCI_LAYER || mediaType === MediaType.DOCKER_LAYER;
}

/**
 * A layer whose blob is read through an opener and verified on the way: size and digest of
 * the blob, and the diff id of its decompressed tar, whichever of the two streams is read.
 * A stream fails at its end on a mismatch, so it is verified once it has been read to its
 * last byte (the tar reader reads past the end-of-archive marker for this reason).
 */
export class BlobLayer implements Layer {
  /**
   * The diff id is known to match: computed in this process from the same bytes (a freshly
   * built layer), or checked by a full read of a stream of this layer. The blob's own digest is
   * checked on every read, so the same digest means the same tar: a copy after an unpack (as
   * `init` does with its base) does not decompress the layer a second time.
   */
  protected diffIdTrusted = false;
  constructor(
    readonly descriptor: Descriptor,
    readonly diffId: string,
    private readonly open: BlobOpener,
    private readonly what: string,
    readonly origin?: BlobOrigin,
  ) {}
  get digest(): string {
    return this.descriptor.digest;
  }
  get size(): number {
    return this.descriptor.size;
  }
  get mediaType(): string {
    return this.descriptor.mediaType;
  }
  /** The blob as stored, checked for size and digest. */
  private async verifiedBlob(): Promise<Readable> {
    const raw = await this.open(this.descriptor);
    const v = new VerifyingStream(this.descriptor, `${this.what}: layer ${this.digest}`, RUN_AHEAD);
    // pipeline: an error anywhere reaches the consumer; a consumer that stops early frees the source.
    return pipeline(raw, v, noop);
  }
  async compressed(): Promise<Readable> {
    const blob = await this.verifiedBlob();
    // An uncompressed blob whose diff id is its digest was just checked in full.
    if (this.diffIdTrusted || (this.diffId === this.digest && isPlainTar(this.mediaType))) return blob;
    const tap = new DiffIdTap(this.diffId, `${this.what}: uncompressed layer ${this.digest} (diff id)`);
    tap.once("end", () => {
      this.diffIdTrusted = true;
    });
    return pipeline(blob, tap, noop);
  }
  async uncompressed(onCompressedBytes?: (n: number) => void): Promise<Readable> {
    const blob = await this.verifiedBlob();
    const c = onCompressedBytes
      ? pipeline(blob, new CountingStream(onCompressedBytes, RUN_AHEAD), noop)
      : blob;
    const d = new AutoDecompress(RUN_AHEAD);
    if (this.diffIdTrusted) {
      // Read in full before (a check, then the build): the blob's digest, checked again on
      // this read, pins the compressed bytes and so the tar; hashing ~700 MB of tar again
      // would cost seconds of CPU for nothing.
      return pipeline(c, d, new PassThrough({ writableHighWaterMark: RUN_AHEAD.highWaterMark }), noop);
    }
    const v = new VerifyingStream(
      { digest: this.diffId },
      `${this.what}: uncompressed layer ${this.digest} (diff id)`,
      // The consumer iterates this stream, and an iterator's read() joins whatever is buffered
      // on the readable side: buffer ahead on the writable side only, chunk by chunk.
      { writableHighWaterMark: RUN_AHEAD.highWaterMark },
    );
    v.once("end", () => {
      this.diffIdTrusted = true;
    });
    return pipeline(c, d, v, noop);
  }
}

/** A layer backed by a local file (a freshly built layer). */
export class FileLayer extends BlobLayer {
  protected override diffIdTrusted = true;
  constructor(descriptor: Descriptor, diffId: string, path: string) {
    super(
      descriptor,
      diffId,
      async () => createReadStream(path, { highWaterMark: READ_CHUNK }),
      `layer file ${path}`,
    );
  }
}

/** An image from its manifest and config bytes plus a layer list; the shape every transport ends in. */
/** The index an image was selected from (for `inspect`). */
export interface IndexInfo {
  digest: string;
  mediaType: string;
  /** Platforms the index offers, as os/arch[/variant]. */
  platforms: string[];
}

/** Describe an index for IndexInfo. */
export function indexInfo(bytes: Buffer, mediaType: string, what: string): IndexInfo {
  const idx = parseIndex(bytes, what);
  return {
    digest: sha256(bytes),
    mediaType,
    platforms: idx.manifests.map((d) => formatPlatform(d.platform)),
  };
}

export class BuiltImage implements Image {
  /** Set when the image was chosen from an index / manifest list by platform. */
  index?: IndexInfo;
  private readonly parsedManifest: Manifest;
  private readonly parsedConfig: ImageConfig;
  constructor(
    readonly name: string,
    private readonly manifestMediaType: string,
    private readonly manifestBytes: Buffer,
    private readonly configBytes: Buffer,
    private readonly layerList: Layer[],
    private readonly cleanups: (() => Promise<void>)[] = [],
  ) {
    this.parsedManifest = parseManifest(manifestBytes, `${name} manifest`);
    this.parsedConfig = parseConfig(configBytes, this.parsedManifest.layers.length, `${name} config`);
  }
  mediaType(): string {
    return this.manifestMediaType;
  }
  async rawManifest(): Promise<Buffer> {
    return this.manifestBytes;
  }
  async manifest(): Promise<Manifest> {
    return structuredClone(this.parsedManifest);
  }
  async rawConfig(): Promise<Buffer> {
    return this.configBytes;
  }
  async config(): Promise<ImageConfig> {
    return structuredClone(this.parsedConfig);
  }
  async layers(): Promise<Layer[]> {
    return [...this.layerList];
  }
  async layerByDigest(digest: string): Promise<Layer | undefined> {
    return this.layerList.find((l) => l.digest === digest);
  }
  async layerByDiffId(diffId: string): Promise<Layer | undefined> {
    return this.layerList.find((l) => l.diffId === diffId);
  }
  async digest(): Promise<string> {
    return sha256(this.manifestBytes);
  }
  async close(): Promise<void> {
    const fns = this.cleanups.splice(0);
    for (const f of fns.reverse()) await f();
  }
  /** Cleanups to carry over into an image derived from this one. */
  takeCleanups(): (() => Promise<void>)[] {
    return this.cleanups.splice(0);
  }
}

/**
 * Build an Image from a transport's minimum: the manifest bytes and a blob opener.
 * Fetches and checks the config; layers are opened lazily.
 */
export async function imageFromManifest(opts: {
  name: string;
  mediaType: string;
  manifest: Buffer;
  open: BlobOpener;
  origin?: BlobOrigin;
  cleanups?: (() => Promise<void>)[];
}): Promise<BuiltImage> {
  if (opts.manifest.length > MAX_MANIFEST_BYTES) {
    throw new KairosError(`${opts.name}: manifest larger than ${MAX_MANIFEST_BYTES} bytes`);
  }
  const m = parseManifest(opts.manifest, `${opts.name} manifest`);
  if (m.config.size > MAX_CONFIG_BYTES) {
    throw new KairosError(`${opts.name}: config is ${m.config.size} bytes, more than ${MAX_CONFIG_BYTES}`);
  }
  const raw = await opts.open(m.config);
  const v = new VerifyingStream(m.config, `${opts.name}: config ${m.config.digest}`);
  raw.on("error", (e) => v.destroy(e));
  const chunks: Buffer[] = [];
  for await (const c of raw.pipe(v)) chunks.push(c as Buffer);
  const configBytes = Buffer.concat(chunks);
  const cfg = parseConfig(configBytes, m.layers.length, `${opts.name} config`);
  const layers = m.layers.map(
    (d, i) => new BlobLayer(d, cfg.rootfs.diff_ids[i]!, opts.open, opts.name, opts.origin),
  );
  return new BuiltImage(opts.name, opts.mediaType, opts.manifest, configBytes, layers, opts.cleanups ?? []);
}

/** Remove a temporary directory (used as an image cleanup). */
export function removeLater(dir: string): () => Promise<void> {
  return () => rm(dir, { recursive: true, force: true });
}

export { DigestMismatchError };
