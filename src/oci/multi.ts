import { rm, stat } from "node:fs/promises";
import { KairosError } from "../sys/index.js";
import { imageBlobEntries, layoutArchiveEntries, writeArchiveFile } from "./archive.js";
import { sha256 } from "./digest.js";
import { type BuiltImage, detectMediaType, imageFromManifest, isIndexType, parseIndex } from "./image.js";
import {
  addToIndexJson,
  blobPath,
  dirFiles,
  type LayoutFiles,
  layoutEntry,
  REF_NAME,
  readManifestBlob,
  writeBlobBytes,
  writeLayout,
} from "./layout.js";
import { formatReference, type ImageReference, parseReference } from "./reference.js";
import { type PushOptions, pushImage, type RemoteOptions, registryFor } from "./remote.js";
import { TarIndex } from "./tarindex.js";
import { type Descriptor, type ImageIndex, MANIFEST_TYPES, MediaType } from "./types.js";
import type { TransferOptions } from "./util.js";

/** A multi-platform index (or manifest list) and a way to open each of its images. */
export interface IndexHandle {
  name: string;
  mediaType: string;
  /** The index bytes exactly as stored (children are referenced by digest, so they are copied as-is). */
  raw: Buffer;
  index: ImageIndex;
  /** Open the image an index entry points to. */
  child(desc: Descriptor): Promise<BuiltImage>;
}

function notAnIndex(name: string): KairosError {
  return new KairosError(`${name} is a single image, not a multi-platform index`, "copy it without --all");
}

/** Open the index a reference names (docker://, oci:, oci-archive:), for copying all platforms. */
export async function openIndex(
  ref: string | ImageReference,
  opts: RemoteOptions = {},
): Promise<IndexHandle> {
  const r = typeof ref === "string" ? parseReference(ref) : ref;
  const name = formatReference(r);
  if (r.transport === "docker") {
    const reg = registryFor(r.ref.registry, opts);
    const repo = r.ref.repository;
    const { bytes, mediaType } = await reg.getManifest(repo, r.ref.digest ?? r.ref.tag ?? "latest", name);
    if (!isIndexType(mediaType)) throw notAnIndex(name);
    return {
      name,
      mediaType,
      raw: bytes,
      index: parseIndex(bytes, `${name} index`),
      child: async (d) => {
        const m = await reg.getManifest(repo, d.digest, name);
        return imageFromManifest({
          name: `${name}@${d.digest}`,
          mediaType: m.mediaType,
          manifest: m.bytes,
          open: async (b) => reg.openBlob(repo, b, name),
          origin: { registry: r.ref.registry, repository: repo },
        });
      },
    };
  }
  if (r.transport === "oci" || r.transport === "oci-archive") {
    let files: LayoutFiles;
    if (r.transport === "oci") {
      if (!(await stat(r.path).catch(() => undefined))?.isDirectory()) {
        throw new KairosError(`oci:${r.path}: no such directory`, "check the path");
      }
      files = dirFiles(r.path);
    } else {
      const tarIndex = await TarIndex.scan(r.path, `oci-archive:${r.path}`);
      files = {
        name: `oci-archive:${r.path}`,
        has: async (p) => tarIndex.has(p),
        read: (p, limit) => tarIndex.read(p, limit, `oci-archive:${r.path}`),
        open: async (p) => {
          const m = tarIndex.resolve(p);
          if (!m) throw new KairosError(`oci-archive:${r.path}: ${p} is missing from the archive`);
          return tarIndex.open(m);
        },
      };
    }
    const { name: n, desc } = await layoutEntry(files, r.tag);
    const raw = await readManifestBlob(files, n, desc, "index");
    const mediaType = detectMediaType(raw, desc.mediaType, `${n} index`);
    if (!isIndexType(mediaType)) throw notAnIndex(n);
    return {
      name: n,
      mediaType,
      raw,
      index: parseIndex(raw, `${n} index`),
      child: async (d) => {
        const bytes = await readManifestBlob(files, n, d, "manifest");
        return imageFromManifest({
          name: `${n}@${d.digest}`,
          mediaType: detectMediaType(bytes, d.mediaType, `${n} manifest`),
          manifest: bytes,
          open: (b) => files.open(blobPath(b.digest)),
        });
      },
    };
  }
  throw new KairosError(
    `--all reads indexes from docker://, oci: and oci-archive: only, not ${r.transport}:`,
  );
}

/** The entries of an index that are images (nested indexes are refused). */
function imageEntries(h: IndexHandle): Descriptor[] {
  for (const d of h.index.manifests) {
    if (!MANIFEST_TYPES.includes(d.mediaType)) {
      throw new KairosError(
        `${h.name}: entry ${d.digest} has media type ${d.mediaType}; only image manifests can be copied with --all`,
      );
    }
  }
  return h.index.manifests;
}

/**
 * Copy every image of an index and then the index itself, byte for byte, so the destination
 * has the same index digest. Destinations: docker://, oci:, oci-archive:.
 */
export async function writeIndex(
  h: IndexHandle,
  dest: string | ImageReference,
  opts: PushOptions & TransferOptions = {},
): Promise<string> {
  const r = typeof dest === "string" ? parseReference(dest) : dest;
  const digest = sha256(h.raw);
  const children = imageEntries(h);
  const withChild = async (d: Descriptor, fn: (img: BuiltImage) => Promise<unknown>) => {
    const img = await h.child(d);
    try {
      await fn(img);
    } finally {
      await img.close();
    }
  };
  switch (r.transport) {
    case "docker": {
      for (const d of children) {
        await withChild(d, (img) => pushImage(img, { ...r.ref, tag: undefined, digest: d.digest }, opts));
      }
      const reg = registryFor(r.ref.registry, opts);
      await reg.putManifest(r.ref.repository, r.ref.tag ?? digest, h.raw, h.mediaType, formatReference(r));
      return digest;
    }
    case "oci": {
      const existed = await stat(r.path).catch(() => undefined);
      try {
        for (const d of children) {
          await withChild(d, (img) => writeLayout(img, r.path, undefined, { ...opts, indexEntry: false }));
        }
        const desc: Descriptor = {
          mediaType: h.mediaType,
          digest,
          size: h.raw.length,
          ...(r.tag ? { annotations: { [REF_NAME]: r.tag } } : {}),
        };
        await writeBlobBytes(r.path, desc, h.raw);
        await addToIndexJson(r.path, desc, r.tag);
      } catch (e) {
        if (!existed) await rm(r.path, { recursive: true, force: true });
        throw e;
      }
      return digest;
    }
    case "oci-archive": {
      const desc: Descriptor = {
        mediaType: h.mediaType,
        digest,
        size: h.raw.length,
        ...(r.tag ? { annotations: { [REF_NAME]: r.tag } } : {}),
      };
      const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.OCI_INDEX, manifests: [desc] };
      const raw = h.raw;
      async function* blobs() {
        const seen = new Set<string>();
        for (const d of children) {
          const img = await h.child(d);
          try {
            yield* imageBlobEntries(img, seen, opts.progress);
          } finally {
            await img.close();
          }
        }
        yield {
          header: {
            path: blobPath(digest),
            type: "file" as const,
            mode: 0o644,
            uid: 0,
            gid: 0,
            size: raw.length,
            mtime: 0,
          },
          body: raw,
        };
      }
      await writeArchiveFile(r.path, layoutArchiveEntries(index, blobs()), opts.signal);
      return digest;
    }
    default:
      throw new KairosError(
        `--all writes to docker://, oci: and oci-archive: only, not ${r.transport}:`,
        "a docker-archive or daemon holds one platform: copy without --all and choose it with --platform",
      );
  }
}

/** Copy a whole multi-platform index between transports. */
export async function copyIndex(
  src: string,
  dest: string | ImageReference,
  opts: PushOptions &
    TransferOptions & { srcCreds?: RemoteOptions["creds"]; destCreds?: RemoteOptions["creds"] } = {},
): Promise<{ digest: string; images: number }> {
  const h = await openIndex(src, { ...opts, creds: opts.srcCreds ?? opts.creds });
  const digest = await writeIndex(h, dest, { ...opts, creds: opts.destCreds ?? opts.creds });
  return { digest, images: h.index.manifests.length };
}
