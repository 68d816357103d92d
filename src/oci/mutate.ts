import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import { KairosError } from "../sys/index.js";
import { HashingStream, sha256 } from "./digest.js";
import { BuiltImage, FileLayer, parseManifest } from "./image.js";
import { makeTempDir } from "./tmp.js";
import {
  type ContainerConfig,
  type HistoryEntry,
  type Image,
  type ImageConfig,
  type Layer,
  type Manifest,
  MediaType,
  type Platform,
} from "./types.js";
import { CountingStream } from "./util.js";

/** The `created` time: SOURCE_DATE_EPOCH when set (reproducible builds), else now. */
export function createdTime(): string {
  const sde = process.env.SOURCE_DATE_EPOCH;
  if (sde && /^\d+$/.test(sde)) return new Date(Number(sde) * 1000).toISOString().replace(/\.000Z$/, "Z");
  return new Date().toISOString();
}

export interface LayerFile {
  path: string;
  digest: string;
  diffId: string;
  size: number;
  uncompressedSize: number;
  mediaType: string;
  cleanup: () => Promise<void>;
}

export interface BuildLayerOptions {
  /** gzip (default) or none. */
  compression?: "gzip" | "none";
  /** gzip level 1–9 (default 6). */
  level?: number;
  signal?: AbortSignal;
  /** Called with the uncompressed byte count as the tar flows. */
  onBytes?: (n: number) => void;
}

/**
 * Turn a tar stream into a layer blob file in one pass: sha256 of the tar (diff id) and of the
 * compressed bytes (digest) are computed on the way; the tar itself is never stored.
 */
export async function buildLayerFile(
  tar: AsyncIterable<Uint8Array> | Readable,
  opts: BuildLayerOptions = {},
): Promise<LayerFile> {
  const { dir, cleanup } = await makeTempDir("layer");
  const path = join(dir, "layer");
  const plain = new HashingStream();
  const packed = new HashingStream();
  const gzip = opts.compression !== "none";
  try {
    const src = tar instanceof Readable ? tar : Readable.from(tar);
    const stages: NodeJS.ReadWriteStream[] = [plain];
    if (opts.onBytes) {
      stages.push(new CountingStream(opts.onBytes));
    }
    if (gzip) stages.push(createGzip({ level: opts.level ?? 6 }));
    stages.push(packed);
    await pipeline([src, ...stages, createWriteStream(path)], { signal: opts.signal });
  } catch (e) {
    await cleanup();
    throw e;
  }
  return {
    path,
    digest: packed.digest,
    diffId: plain.digest,
    size: packed.size,
    uncompressedSize: plain.size,
    mediaType: gzip ? MediaType.OCI_LAYER_GZIP : MediaType.OCI_LAYER,
    cleanup,
  };
}

/** The layer media type matching the manifest's family (Docker or OCI). */
function layerMediaType(manifestType: string, compressed: boolean): string {
  if (manifestType === MediaType.DOCKER_MANIFEST)
    return compressed ? MediaType.DOCKER_LAYER_GZIP : MediaType.DOCKER_LAYER;
  return compressed ? MediaType.OCI_LAYER_GZIP : MediaType.OCI_LAYER;
}

async function cleanupsOf(image: Image): Promise<(() => Promise<void>)[]> {
  // The derived image owns the base's temp files, and closing it closes the base.
  return image instanceof BuiltImage ? image.takeCleanups() : [() => image.close()];
}

/** Assemble a new image from a manifest, config and layers (nothing is copied). */
async function compose(
  base: Image,
  name: string,
  manifest: Manifest,
  config: ImageConfig,
  layers: Layer[],
  extraCleanups: (() => Promise<void>)[] = [],
): Promise<BuiltImage> {
  const configBytes = Buffer.from(JSON.stringify(config));
  manifest.config = { ...manifest.config, digest: sha256(configBytes), size: configBytes.length };
  manifest.layers = layers.map((l) => l.descriptor);
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  parseManifest(manifestBytes, name);
  return new BuiltImage(name, base.mediaType(), manifestBytes, configBytes, layers, [
    ...(await cleanupsOf(base)),
    ...extraCleanups,
  ]);
}

export interface AppendOptions extends BuildLayerOptions {
  /** The history entry for the new layer (created defaults to createdTime()). */
  history?: HistoryEntry;
}

/**
 * Append a layer from a tar stream: diff id, gzip, digest and size are computed in one pass
 * (the compressed blob is staged once in a temp file, released by `close()` of the result).
 */
export async function appendLayer(
  image: Image,
  tar: AsyncIterable<Uint8Array> | Readable,
  opts: AppendOptions = {},
): Promise<BuiltImage> {
  const f = await buildLayerFile(tar, opts);
  const compressed = opts.compression !== "none";
  const desc = { mediaType: layerMediaType(image.mediaType(), compressed), digest: f.digest, size: f.size };
  const layer = new FileLayer(desc, f.diffId, f.path);
  const config = await image.config();
  const created = opts.history?.created ?? createdTime();
  config.rootfs.diff_ids.push(f.diffId);
  config.history = [...(config.history ?? []), { created, ...opts.history }];
  config.created = created;
  return compose(
    image,
    image.name,
    await image.manifest(),
    config,
    [...(await image.layers()), layer],
    [f.cleanup],
  );
}

/** Changes to an image config; `env` entries replace variables of the same name. */
export interface ConfigEdit {
  env?: string[];
  labels?: Record<string, string>;
  entrypoint?: string[] | null;
  cmd?: string[] | null;
  workingDir?: string;
  user?: string;
  platform?: Platform;
  created?: string;
  author?: string;
}

/** Apply a ConfigEdit to a config object (returns a new one). */
export function applyConfigEdit(config: ImageConfig, edit: ConfigEdit): ImageConfig {
  const c = structuredClone(config);
  const cc: ContainerConfig = { ...(c.config ?? {}) };
  if (edit.env) {
    const env = [...(cc.Env ?? [])];
    for (const e of edit.env) {
      const eq = e.indexOf("=");
      if (eq <= 0) throw new KairosError(`invalid environment entry '${e}'`, "use NAME=VALUE");
      const key = e.slice(0, eq + 1);
      const i = env.findIndex((x) => x.startsWith(key));
      if (i >= 0) env[i] = e;
      else env.push(e);
    }
    cc.Env = env;
  }
  if (edit.labels) cc.Labels = { ...(cc.Labels ?? {}), ...edit.labels };
  if (edit.entrypoint !== undefined) cc.Entrypoint = edit.entrypoint;
  if (edit.cmd !== undefined) cc.Cmd = edit.cmd;
  if (edit.workingDir !== undefined) cc.WorkingDir = edit.workingDir;
  if (edit.user !== undefined) cc.User = edit.user;
  c.config = cc;
  if (edit.platform) {
    c.os = edit.platform.os;
    c.architecture = edit.platform.architecture;
    if (edit.platform.variant) c.variant = edit.platform.variant;
    else delete c.variant;
  }
  if (edit.created) c.created = edit.created;
  if (edit.author) c.author = edit.author;
  return c;
}

/** A new image with an edited config; layers are shared, not copied. */
export async function editConfig(image: Image, edit: ConfigEdit): Promise<BuiltImage> {
  const config = applyConfigEdit(await image.config(), edit);
  return compose(image, image.name, await image.manifest(), config, await image.layers());
}

/** An image with no layers (the base of `FROM scratch`). */
export function emptyImage(
  platform: Platform = { os: "linux", architecture: "amd64" },
  name = "scratch",
): BuiltImage {
  const config: ImageConfig = {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    created: createdTime(),
    config: {},
    rootfs: { type: "layers", diff_ids: [] },
    history: [],
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const manifest: Manifest = {
    schemaVersion: 2,
    mediaType: MediaType.OCI_MANIFEST,
    config: { mediaType: MediaType.OCI_CONFIG, digest: sha256(configBytes), size: configBytes.length },
    layers: [],
  };
  return new BuiltImage(name, MediaType.OCI_MANIFEST, Buffer.from(JSON.stringify(manifest)), configBytes, []);
}
