import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KairosError } from "../sys/index.js";
import type { TarHeader } from "../tar/index.js";
import { type WriteEntry, writeTar } from "../tar/index.js";
import { sniffCompression } from "./compression.js";
import { HashingStream, parseDigest, sha256 } from "./digest.js";
import { type BuiltImage, imageFromManifest } from "./image.js";
import { blobPath, indexDescriptor, type LayoutFiles, openLayoutImage } from "./layout.js";
import { parseDockerReference } from "./reference.js";
import { type Member, TarIndex } from "./tarindex.js";
import { makeTempDir } from "./tmp.js";
import {
  type Descriptor,
  type Image,
  type ImageIndex,
  MAX_CONFIG_BYTES,
  MAX_MANIFEST_BYTES,
  type Manifest,
  MediaType,
  type Platform,
} from "./types.js";
import { counted, shortDigest, type TransferOptions } from "./util.js";

function archiveFiles(index: TarIndex, name: string): LayoutFiles {
  return {
    name,
    has: async (p) => index.has(p),
    read: (p, limit) => index.read(p, limit, name),
    open: async (p) => {
      const m = index.resolve(p);
      if (!m) throw new KairosError(`${name}: ${p} is missing from the archive`, "the archive is incomplete");
      return index.open(m);
    },
  };
}

/** Open `oci-archive:FILE[:TAG]`: a tar of an OCI layout, read by member offset without extracting. */
export async function openOciArchive(file: string, tag?: string, platform?: Platform): Promise<BuiltImage> {
  const index = await TarIndex.scan(file, `oci-archive:${file}`);
  return openLayoutImage(archiveFiles(index, `oci-archive:${file}`), tag, platform);
}

interface DockerManifestEntry {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** Does a docker-archive RepoTag name the image the user asked for? ("foo:1" matches "docker.io/library/foo:1"). */
function sameName(a: string, b: string): boolean {
  if (a === b) return true;
  try {
    const x = parseDockerReference(a);
    const y = parseDockerReference(b);
    return x.registry === y.registry && x.repository === y.repository && x.tag === y.tag;
  } catch {
    return false;
  }
}

/**
 * Open `docker-archive:FILE[:NAME:TAG|:@N]` (docker save / podman save format). An OCI manifest is
 * synthesized: uncompressed layers get their diff id as digest; compressed ones are hashed once.
 */
export async function openDockerArchive(
  file: string,
  select: { name?: string; index?: number } = {},
  cleanups: (() => Promise<void>)[] = [],
  label = `docker-archive:${file}`,
): Promise<BuiltImage> {
  const index = await TarIndex.scan(file, label);
  let entries: DockerManifestEntry[];
  try {
    entries = JSON.parse((await index.read("manifest.json", MAX_MANIFEST_BYTES, label)).toString("utf8"));
    if (!Array.isArray(entries)) throw new Error("not an array");
  } catch (e) {
    if (e instanceof KairosError) throw e;
    throw new KairosError(`${label}: manifest.json is not valid: ${(e as Error).message}`);
  }
  const names = entries.flatMap((e) => e.RepoTags ?? []);
  let entry: DockerManifestEntry | undefined;
  if (select.name) {
    entry = entries.find((e) => (e.RepoTags ?? []).some((t) => sameName(t, select.name!)));
    if (!entry) {
      throw new KairosError(
        `${label}: no image named '${select.name}'`,
        `names in this archive: ${names.join(", ") || "none"}`,
      );
    }
  } else if (select.index !== undefined) {
    entry = entries[select.index];
    if (!entry)
      throw new KairosError(`${label}: no image @${select.index} (the archive holds ${entries.length})`);
  } else if (entries.length === 1) {
    entry = entries[0];
  } else {
    throw new KairosError(
      `${label}: the archive holds ${entries.length} images; name one`,
      `use docker-archive:${file}:NAME:TAG or :@INDEX; names: ${names.join(", ") || "none"}`,
    );
  }
  if (!entry || typeof entry.Config !== "string" || !Array.isArray(entry.Layers)) {
    throw new KairosError(`${label}: manifest.json entry is missing Config or Layers`);
  }
  const configBytes = await index.read(entry.Config, MAX_CONFIG_BYTES, label);
  const configDigest = sha256(configBytes);
  let diffIds: string[];
  try {
    diffIds = JSON.parse(configBytes.toString("utf8")).rootfs.diff_ids;
    if (!Array.isArray(diffIds) || diffIds.length !== entry.Layers.length)
      throw new Error("diff_ids do not match Layers");
  } catch (e) {
    throw new KairosError(`${label}: image config ${entry.Config} is invalid: ${(e as Error).message}`);
  }
  const byDigest = new Map<string, Member>();
  const layers: Descriptor[] = [];
  for (const [i, p] of entry.Layers.entries()) {
    const m = index.resolve(p);
    if (!m) throw new KairosError(`${label}: layer ${p} is missing from the archive`);
    const head = await readHead(index, m);
    const kind = sniffCompression(head);
    let digest: string;
    let mediaType: string;
    if (kind === "none") {
      digest = diffIds[i]!;
      mediaType = MediaType.OCI_LAYER;
    } else {
      const h = new HashingStream();
      await pipeline(index.open(m), h, async (src) => {
        for await (const _ of src);
      });
      digest = h.digest;
      mediaType = kind === "gzip" ? MediaType.OCI_LAYER_GZIP : MediaType.OCI_LAYER_ZSTD;
    }
    byDigest.set(digest, m);
    layers.push({ mediaType, digest, size: m.size });
  }
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OCI_MANIFEST,
    config: { mediaType: MediaType.OCI_CONFIG, digest: configDigest, size: configBytes.length },
    layers,
  };
  return imageFromManifest({
    name: label,
    mediaType: MediaType.OCI_MANIFEST,
    manifest: Buffer.from(JSON.stringify(manifest)),
    open: async (d) => {
      if (d.digest === configDigest) return Readable.from([configBytes]);
      const m = byDigest.get(d.digest);
      if (!m) throw new KairosError(`${label}: no blob ${d.digest}`);
      return index.open(m);
    },
    cleanups,
  });
}

async function readHead(index: TarIndex, m: Member): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of index.open(m, 0, 8)) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** "name" → "name:latest", as docker load expects a tag in RepoTags. */
function withDefaultTag(name: string): string {
  return name.split("/").pop()!.includes(":") ? name : `${name}:latest`;
}

function fileHeader(path: string, size: number): TarHeader {
  return { path, type: "file", mode: 0o644, uid: 0, gid: 0, size, mtime: 0 };
}
function dirHeader(path: string): TarHeader {
  return { path, type: "directory", mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 0 };
}

/** Write a tar to `file` atomically: a temp file next to it, renamed on success, removed on failure. */
export async function writeArchiveFile(
  file: string,
  entries: AsyncIterable<WriteEntry>,
  signal?: AbortSignal,
): Promise<void> {
  const st = await stat(file).catch(() => undefined);
  if (st?.isDirectory()) throw new KairosError(`${file} is a directory`, "give an archive file name");
  const tmp = join(dirname(file), `.${file.split("/").pop()}.tmp-${randomBytes(4).toString("hex")}`);
  try {
    await pipeline(Readable.from(writeTar(entries)), createWriteStream(tmp, { flags: "wx" }), { signal });
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** The blobs of one image as archive entries (layers, config, manifest), skipping digests in `seen`. */
export async function* imageBlobEntries(
  image: Image,
  seen: Set<string>,
  progress?: TransferOptions["progress"],
): AsyncGenerator<WriteEntry> {
  const manifest = await image.manifest();
  for (const layer of await image.layers()) {
    if (seen.has(layer.digest)) continue;
    seen.add(layer.digest);
    const task = progress?.task(`layer ${shortDigest(layer.digest)}`, layer.size);
    const s = await layer.compressed();
    yield { header: fileHeader(blobPath(layer.digest), layer.size), body: task ? counted(s, task) : s };
    task?.finish();
  }
  for (const [digest, bytes] of [
    [manifest.config.digest, await image.rawConfig()],
    [await image.digest(), await image.rawManifest()],
  ] as const) {
    if (seen.has(digest)) continue;
    seen.add(digest);
    yield { header: fileHeader(blobPath(digest), bytes.length), body: bytes };
  }
}

/** The entries of an OCI layout tar: oci-layout, index.json, blob directories, then `blobs`. */
export async function* layoutArchiveEntries(
  index: ImageIndex,
  blobs: AsyncIterable<WriteEntry>,
): AsyncGenerator<WriteEntry> {
  const json = (o: unknown) => Buffer.from(JSON.stringify(o));
  const layoutFile = json({ imageLayoutVersion: "1.0.0" });
  yield { header: fileHeader("oci-layout", layoutFile.length), body: layoutFile };
  const idx = json(index);
  yield { header: fileHeader("index.json", idx.length), body: idx };
  yield { header: dirHeader("blobs") };
  yield { header: dirHeader("blobs/sha256") };
  yield* blobs;
}

/** Write `oci-archive:FILE[:TAG]`: the layout as one tar, blobs streamed straight in (sizes are known). */
export async function writeOciArchive(
  image: Image,
  file: string,
  tag: string | undefined,
  opts: TransferOptions = {},
) {
  const desc = await indexDescriptor(image, tag);
  const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests: [desc] };
  await writeArchiveFile(
    file,
    layoutArchiveEntries(index, imageBlobEntries(image, new Set(), opts.progress)),
    opts.signal,
  );
  return desc.digest;
}

/**
 * Write `docker-archive:FILE[:NAME:TAG]` (docker load format): layers uncompressed as
 * `<diffid>.tar`. Compressed layers are decompressed once into a temp file (tar headers need sizes).
 */
export async function writeDockerArchive(
  image: Image,
  file: string,
  name: string | undefined,
  opts: TransferOptions = {},
) {
  const config = await image.rawConfig();
  const configName = `${parseDigest(sha256(config)).hex}.json`;
  const layers = await image.layers();
  const { dir: tmpDir, cleanup } = await makeTempDir("docker-archive");
  const progress = opts.progress;
  try {
    const layerNames = layers.map((l) => `${parseDigest(l.diffId).hex}.tar`);
    async function* entries(): AsyncGenerator<WriteEntry> {
      const seen = new Set<string>();
      for (const [i, layer] of layers.entries()) {
        const path = layerNames[i]!;
        if (seen.has(path)) continue;
        seen.add(path);
        const task = progress?.task(`layer ${shortDigest(layer.digest)}`, layer.size);
        // The total is the blob's size: count the blob bytes read, not the tar bytes written.
        const onBlobBytes = task && ((n: number) => task.update(n));
        const isPlain = layer.mediaType === MediaType.OCI_LAYER || layer.mediaType === MediaType.DOCKER_LAYER;
        if (isPlain) {
          const s = await layer.uncompressed(onBlobBytes);
          yield { header: fileHeader(path, layer.size), body: s };
        } else {
          const staged = join(tmpDir, path);
          const s = await layer.uncompressed(onBlobBytes);
          await pipeline(s, createWriteStream(staged), { signal: opts.signal });
          const { size } = await stat(staged);
          yield { header: fileHeader(path, size), body: createReadStream(staged) };
          await rm(staged, { force: true });
        }
        task?.finish();
      }
      yield { header: fileHeader(configName, config.length), body: config };
      const m = Buffer.from(
        JSON.stringify([
          { Config: configName, RepoTags: name ? [withDefaultTag(name)] : [], Layers: layerNames },
        ]),
      );
      yield { header: fileHeader("manifest.json", m.length), body: m };
    }
    await writeArchiveFile(file, entries(), opts.signal);
  } finally {
    await cleanup();
  }
  return image.digest();
}
