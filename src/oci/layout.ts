import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KairosError } from "../sys/index.js";
import { parseDigest, sha256, verifyBytes } from "./digest.js";
import {
  type BuiltImage,
  detectMediaType,
  type IndexInfo,
  imageFromManifest,
  indexInfo,
  isIndexType,
  parseIndex,
  parseJson,
  selectPlatform,
} from "./image.js";
import { DEFAULT_PLATFORM } from "./reference.js";
import type { Descriptor, Image, ImageIndex, Platform } from "./types.js";
import { MAX_MANIFEST_BYTES, MediaType } from "./types.js";
import {
  counted,
  forEachLimit,
  READ_CHUNK,
  shortDigest,
  type TransferOptions,
  uniqueByDigest,
} from "./util.js";

export const REF_NAME = "org.opencontainers.image.ref.name";

/** Read access to the files of an OCI layout (a directory, or members of an oci-archive). */
export interface LayoutFiles {
  /** Human name for messages. */
  name: string;
  has(path: string): Promise<boolean>;
  read(path: string, limit: number): Promise<Buffer>;
  open(path: string): Promise<Readable>;
}

export function blobPath(digest: string): string {
  const { algorithm, hex } = parseDigest(digest);
  return `blobs/${algorithm}/${hex}`;
}

/** A layout directory on disk. */
export function dirFiles(dir: string): LayoutFiles {
  return {
    name: `oci:${dir}`,
    has: async (p) =>
      stat(join(dir, p)).then(
        () => true,
        () => false,
      ),
    read: async (p, limit) => {
      const st = await stat(join(dir, p));
      if (st.size > limit) throw new KairosError(`oci:${dir}: ${p} is larger than ${limit} bytes`);
      return readFile(join(dir, p));
    },
    open: async (p) => {
      await stat(join(dir, p)).catch(() => {
        throw new KairosError(`oci:${dir}: blob ${p} is missing`, "the layout is incomplete");
      });
      return createReadStream(join(dir, p), { highWaterMark: READ_CHUNK });
    },
  };
}

/** The index.json entry a tag names (or the only one, or the platform's), checked. */
export async function layoutEntry(
  files: LayoutFiles,
  tag: string | undefined,
  platform: Platform = DEFAULT_PLATFORM,
): Promise<{ name: string; desc: Descriptor }> {
  const name = `${files.name}${tag ? `:${tag}` : ""}`;
  if (!(await files.has("oci-layout"))) {
    throw new KairosError(`${files.name} is not an OCI image layout (no oci-layout file)`, "check the path");
  }
  const layoutDoc = parseJson<{ imageLayoutVersion?: string }>(
    await files.read("oci-layout", 4096),
    `${name} oci-layout`,
  );
  if (layoutDoc.imageLayoutVersion !== "1.0.0") {
    throw new KairosError(
      `${name}: unsupported imageLayoutVersion ${JSON.stringify(layoutDoc.imageLayoutVersion)}`,
    );
  }
  const index = parseIndex(await files.read("index.json", MAX_MANIFEST_BYTES), `${name} index.json`);
  const tags = index.manifests.map((d) => d.annotations?.[REF_NAME]).filter((t): t is string => !!t);
  if (tag) {
    const hit = index.manifests.find((d) => d.annotations?.[REF_NAME] === tag);
    if (!hit) {
      throw new KairosError(
        `${name}: no image tagged '${tag}'`,
        tags.length
          ? `tags in this layout: ${tags.join(", ")}`
          : "this layout has no tagged images; omit the tag",
      );
    }
    return { name, desc: hit };
  }
  if (index.manifests.length === 1) return { name, desc: index.manifests[0]! };
  if (index.manifests.length === 0) throw new KairosError(`${name}: the layout holds no images`);
  if (tags.length) {
    throw new KairosError(`${name}: the layout holds several images; name one`, `tags: ${tags.join(", ")}`);
  }
  return { name, desc: selectPlatform(index, platform, name) };
}

/** A manifest or index blob of a layout, size-limited and verified against its descriptor. */
export async function readManifestBlob(
  files: LayoutFiles,
  name: string,
  d: Descriptor,
  what: string,
): Promise<Buffer> {
  if (d.size > MAX_MANIFEST_BYTES)
    throw new KairosError(`${name}: ${what} larger than ${MAX_MANIFEST_BYTES} bytes`);
  const bytes = await files.read(blobPath(d.digest), MAX_MANIFEST_BYTES).catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") throw new KairosError(`${name}: ${what} blob ${d.digest} is missing`);
    throw e;
  });
  verifyBytes(bytes, d, `${name}: ${what} ${d.digest}`);
  return bytes;
}

/** Pick a tag's manifest (or the only one) from a layout's index.json and open it. */
export async function openLayoutImage(
  files: LayoutFiles,
  tag: string | undefined,
  platform: Platform = DEFAULT_PLATFORM,
  cleanups: (() => Promise<void>)[] = [],
): Promise<BuiltImage> {
  const { name, desc } = await layoutEntry(files, tag, platform);
  const readBlob = (d: Descriptor, what: string) => readManifestBlob(files, name, d, what);
  let bytes = await readBlob(desc, "manifest");
  let mediaType = detectMediaType(bytes, desc.mediaType, `${name} manifest`);
  let selectedFrom: IndexInfo | undefined;
  for (let depth = 0; isIndexType(mediaType); depth++) {
    if (depth > 2) throw new KairosError(`${name}: indexes nested too deeply`);
    selectedFrom ??= indexInfo(bytes, mediaType, `${name} index`);
    const d = selectPlatform(parseIndex(bytes, `${name} index`), platform, name);
    bytes = await readBlob(d, "manifest");
    mediaType = detectMediaType(bytes, d.mediaType, `${name} manifest`);
  }
  const image = await imageFromManifest({
    name,
    mediaType,
    manifest: bytes,
    open: (d) => files.open(blobPath(d.digest)),
    cleanups,
  });
  if (selectedFrom) image.index = selectedFrom;
  return image;
}

/** Open `oci:DIR[:TAG]`. */
export async function openLayout(dir: string, tag?: string, platform?: Platform): Promise<BuiltImage> {
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory()) throw new KairosError(`oci:${dir}: no such directory`, "check the path");
  return openLayoutImage(dirFiles(dir), tag, platform);
}

/** The index.json descriptor for an image (with platform from its config and the tag annotation). */
export async function indexDescriptor(image: Image, tag?: string): Promise<Descriptor> {
  const manifest = await image.rawManifest();
  const cfg = await image.config();
  return {
    mediaType: image.mediaType(),
    digest: sha256(manifest),
    size: manifest.length,
    ...(tag ? { annotations: { [REF_NAME]: tag } } : {}),
    platform: {
      architecture: cfg.architecture,
      os: cfg.os,
      ...(cfg.variant ? { variant: cfg.variant } : {}),
    },
  };
}

async function writeAtomic(path: string, data: Buffer | string): Promise<void> {
  const tmp = `${path}.tmp-${randomBytes(4).toString("hex")}`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/**
 * Write an image into an OCI layout directory (created if missing; an existing layout gets the
 * image added, replacing any image with the same tag). Blobs already present are not rewritten.
 * On failure a directory we created is removed; in an existing layout index.json is untouched.
 */
export async function writeLayout(
  image: Image,
  dir: string,
  tag: string | undefined,
  opts: TransferOptions & { indexEntry?: boolean } = {},
): Promise<string> {
  const existing = await stat(dir).catch(() => undefined);
  if (existing && !existing.isDirectory()) throw new KairosError(`oci:${dir} exists and is not a directory`);
  if (existing) {
    const entries = await readdir(dir);
    if (entries.length && !entries.includes("oci-layout")) {
      throw new KairosError(`oci:${dir} exists and is not an OCI layout`, "choose an empty or new directory");
    }
  }
  const tmpFiles = new Set<string>();
  try {
    await mkdir(join(dir, "blobs", "sha256"), { recursive: true });
    const putBlob = async (desc: Descriptor, src: () => Promise<Readable>, label: string) => {
      const dest = join(dir, blobPath(desc.digest));
      const have = await stat(dest).catch(() => undefined);
      if (have?.size === desc.size) return false;
      await mkdir(join(dest, ".."), { recursive: true });
      const tmp = `${dest}.tmp-${randomBytes(4).toString("hex")}`;
      tmpFiles.add(tmp);
      const task = opts.progress?.task(label, desc.size);
      try {
        const s = await src();
        await pipeline(task ? counted(s, task) : s, createWriteStream(tmp, { flags: "wx" }), {
          signal: opts.signal,
        });
        await rename(tmp, dest);
        tmpFiles.delete(tmp);
        task?.finish();
      } catch (e) {
        task?.fail((e as Error).message);
        throw e;
      }
      return true;
    };
    await forEachLimit(uniqueByDigest(await image.layers()), opts.concurrency ?? 3, async (layer) => {
      await putBlob(layer.descriptor, () => layer.compressed(), `layer ${shortDigest(layer.digest)}`);
    });
    const manifest = await image.manifest();
    const cfg = await image.rawConfig();
    await writeBlobBytes(dir, manifest.config, cfg);
    const raw = await image.rawManifest();
    const desc = await indexDescriptor(image, tag);
    await writeBlobBytes(dir, desc, raw);
    await writeAtomic(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
    if (opts.indexEntry === false) return desc.digest;
    await addToIndexJson(dir, desc, tag);
    return desc.digest;
  } catch (e) {
    if (!existing) await rm(dir, { recursive: true, force: true });
    else for (const t of tmpFiles) await rm(t, { force: true });
    throw e;
  }
}

/** Add a descriptor to a layout's index.json (replacing the entry with the same tag), atomically. */
export async function addToIndexJson(dir: string, desc: Descriptor, tag: string | undefined): Promise<void> {
  let index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests: [] };
  const text = await readFile(join(dir, "index.json")).catch(() => undefined);
  if (text) index = parseIndex(text, `oci:${dir} index.json`);
  index.manifests = index.manifests.filter((d) =>
    tag ? d.annotations?.[REF_NAME] !== tag : d.digest !== desc.digest || !!d.annotations?.[REF_NAME],
  );
  index.manifests.push(desc);
  await writeAtomic(join(dir, "index.json"), JSON.stringify(index));
}

export async function writeBlobBytes(dir: string, desc: Descriptor, bytes: Buffer): Promise<void> {
  const dest = join(dir, blobPath(desc.digest));
  const have = await stat(dest).catch(() => undefined);
  if (have?.size === bytes.length) return;
  await writeAtomic(dest, bytes);
}
