import { randomBytes } from "node:crypto";
import { lstat, readdir, rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { KairosError } from "../sys/errors.js";
import { DirectoryWriter, type DirectoryWriterOptions } from "../tar/extract.js";
import { baseOf, joinPath, parentOf } from "../tar/path.js";
import { PathTrie } from "../tar/path-trie.js";
import { readTar } from "../tar/reader.js";
import type { EntryType, TarEntry, TarHeader } from "../tar/types.js";
import { type WriteEntry, writeTar } from "../tar/writer.js";

/** What flatten needs of an image: its layers, oldest first, each able to stream its tar (more than once). */
export interface LayeredSource {
  readonly name?: string;
  layers(): Promise<readonly FlattenLayer[]>;
}

export interface FlattenLayer {
  readonly digest: string;
  readonly size?: number;
  /** `onCompressedBytes` hears the running count of blob bytes read (for progress). */
  uncompressed(onCompressedBytes?: (n: number) => void): Promise<AsyncIterable<Uint8Array>>;
}

/** Called as each layer is read, with the bytes read so far and the layer's index. */
export type LayerProgress = (event: { layer: number; digest: string; phase: "start" | "done" }) => void;

export interface FlattenOptions {
  onLayer?: LayerProgress;
  /**
   * Told as compressed blob bytes are read: `bytes` more of layer `layer`, `done` in all.
   * `done` reaches the sum of the layers' sizes from the manifest, a total known up front
   * (it passes it when a layer is read twice for hardlinks).
   */
  onBytes?: (event: { layer: number; bytes: number; done: number }) => void;
}

/** Per-read callbacks for `uncompressed()` that turn its running counts into onBytes events. */
function byteCounters(opts: FlattenOptions): (layer: number) => ((n: number) => void) | undefined {
  const onBytes = opts.onBytes;
  let done = 0;
  return (layer) => {
    if (!onBytes) return undefined;
    let seen = 0;
    return (n) => {
      done += n - seen;
      onBytes({ layer, bytes: n - seen, done });
      seen = n;
    };
  };
}

const WHITEOUT = ".wh.";
const OPAQUE = ".wh..wh..opq";

/** The flattened tree contains something no conforming image can produce. */
export class FlattenError extends KairosError {
  override readonly name = "FlattenError";
}

/** What the flattener knows of a final path (PathTrie flags). */
const IS_DECIDED = 1;
const IS_REMOVED = 2;
const IS_OPAQUE = 4;
/** An ancestor of a decided path that no layer named yet (it must stay a directory). */
const IS_IMPLIED = 8;

/** A decided path's value in the trie: its type (one of these codes) and the layer that wrote it. */
const TYPE_CODES: Record<EntryType, number> = {
  file: 0,
  hardlink: 1,
  symlink: 2,
  chardev: 3,
  blockdev: 4,
  directory: 5,
  fifo: 6,
};
const DIRECTORY = TYPE_CODES.directory;
const decidedValue = (type: EntryType, layer: number) => layer * 8 + TYPE_CODES[type];
const typeOfValue = (v: number) => v % 8;
const layerOfValue = (v: number) => Math.floor(v / 8);

/**
 * The final rootfs of an image as one stream of tar entries, reading each layer once,
 * newest first: an entry is kept when no newer layer replaced it, deleted it (`.wh.NAME`)
 * or made its directory opaque (`.wh..wh..opq`). Whiteout markers never appear in the output.
 * Entries can come before their parent directory's entry (tar2sqfs and GNU tar accept that);
 * a hardlink always comes after its target. Hardlinks whose target a newer layer replaced get
 * the target's old content (the layer is read a second time for those, which is rare).
 */
export async function* flattenEntries(
  image: LayeredSource,
  opts: FlattenOptions = {},
): AsyncGenerator<WriteEntry> {
  const layers = await image.layers();
  const counter = byteCounters(opts);
  /** Every path decided (kept), removed, made opaque or implied so far; see the flags above. */
  const paths = new PathTrie();
  /** Hardlinks waiting for their target to show up in an older layer. */
  const pendingLinks = new Map<string, TarHeader[]>();

  /** The path's node (0 when the trie does not hold it) and why an older entry there is not kept. */
  const hiddenBy = (
    path: string,
    layer: number,
  ): { node: number; hidden: "self" | "upper" | "same-layer-nondir" | undefined } => {
    const node = paths.find(path);
    if (paths.flags(node) & (IS_DECIDED | IS_REMOVED)) return { node, hidden: "self" };
    // Nearest ancestor first; ancestors the trie does not hold are in no set.
    for (let k = 0; k < paths.ancestorCount; k++) {
      const a = paths.ancestor(k);
      const f = paths.flags(a);
      if (f & (IS_REMOVED | IS_OPAQUE)) return { node, hidden: "upper" };
      const v = paths.value(a);
      if (f & IS_DECIDED && typeOfValue(v) !== DIRECTORY)
        return { node, hidden: layerOfValue(v) === layer ? "same-layer-nondir" : "upper" };
    }
    return { node, hidden: undefined };
  };

  const markEmitted = (path: string, type: EntryType, layer: number) => {
    const node = paths.add(path);
    paths.setFlags(node, IS_DECIDED);
    paths.setValue(node, decidedValue(type, layer));
    for (let k = 0; k < paths.ancestorCount; k++) {
      const a = paths.ancestor(k);
      if (paths.flags(a) & (IS_IMPLIED | IS_DECIDED)) break;
      paths.setFlags(a, IS_IMPLIED);
    }
  };

  for (let i = layers.length - 1; i >= 0; i--) {
    const layer = layers[i]!;
    const label = `layer ${i + 1}/${layers.length} (${layer.digest})`;
    opts.onLayer?.({ layer: i, digest: layer.digest, phase: "start" });
    const layerRemoved: string[] = [];
    const layerOpaque: string[] = [];
    /** Hardlinks in this layer whose target (earlier in this layer) a newer layer replaced. */
    const orphans = new Map<string, TarHeader[]>();
    /** Replaced targets of this layer whose content now lives under a link's path. */
    const relocated = new Map<string, string>();
    for await (const entry of readTar(await layer.uncompressed(counter(i)), { label })) {
      const name = baseOf(entry.path);
      if (name.startsWith(WHITEOUT)) {
        if (name === OPAQUE) layerOpaque.push(parentOf(entry.path));
        else layerRemoved.push(joinPath(parentOf(entry.path), name.slice(WHITEOUT.length)));
        continue;
      }
      const { node, hidden } = hiddenBy(entry.path, i);
      if (hidden === "same-layer-nondir") {
        throw new FlattenError(
          `${label}: entry ${entry.path} lies under a symlink or file of the same layer`,
          "refusing to write through a symlink planted by an earlier entry",
        );
      }
      const header = headerOf(entry);
      if (hidden) {
        // A replaced target may still be needed by links to it, here or in newer layers.
        const waiting = pendingLinks.get(entry.path);
        if (waiting && entry.type === "file") {
          pendingLinks.delete(entry.path);
          relocated.set(entry.path, waiting[0]!.path);
          yield* linksWithContent(waiting, header, entry.body);
        }
        continue;
      }
      if (entry.type !== "directory" && paths.flags(node) & IS_IMPLIED) {
        throw new FlattenError(
          `${label}: ${entry.path} is a ${entry.type} here, but a newer layer writes files under it without replacing it by a directory`,
          "refusing to write through a symlink planted by an earlier layer; rebuild the newer layer against the real path",
        );
      }
      if (entry.type === "hardlink") {
        const target = entry.linkname!;
        const t = paths.find(target);
        const tDecided = (paths.flags(t) & IS_DECIDED) !== 0;
        const tValue = paths.value(t);
        const moved = relocated.get(target);
        if (moved !== undefined) {
          markEmitted(entry.path, "hardlink", i);
          yield { header: { ...header, linkname: moved } };
        } else if (tDecided && layerOfValue(tValue) === i && typeOfValue(tValue) !== DIRECTORY) {
          markEmitted(entry.path, "hardlink", i);
          yield { header };
        } else if (tDecided || paths.flags(t) & IS_REMOVED) {
          markEmitted(entry.path, "hardlink", i);
          orphans.set(target, [...(orphans.get(target) ?? []), header]);
        } else {
          markEmitted(entry.path, "hardlink", i);
          pendingLinks.set(target, [...(pendingLinks.get(target) ?? []), header]);
        }
        continue;
      }
      markEmitted(entry.path, entry.type, i);
      yield { header, body: entry.type === "file" ? entry.body : undefined };
      const waiting = pendingLinks.get(entry.path);
      if (waiting) {
        pendingLinks.delete(entry.path);
        for (const link of waiting) yield { header: { ...link, linkname: entry.path } };
      }
    }
    if (orphans.size) {
      // Second read of this layer: the content of targets that were replaced above.
      for await (const entry of readTar(await layer.uncompressed(counter(i)), { label })) {
        const links = orphans.get(entry.path);
        if (!links || entry.type !== "file") continue;
        orphans.delete(entry.path);
        yield* linksWithContent(links, headerOf(entry), entry.body);
      }
      // Targets this layer does not hold come from an older layer: wait for them there.
      for (const [target, links] of orphans)
        pendingLinks.set(target, [...(pendingLinks.get(target) ?? []), ...links]);
    }
    for (const p of layerRemoved) paths.setFlags(paths.add(p), IS_REMOVED);
    for (const p of layerOpaque) paths.setFlags(paths.add(p), IS_OPAQUE);
    opts.onLayer?.({ layer: i, digest: layer.digest, phase: "done" });
  }
  const [missing] = pendingLinks.keys();
  if (missing !== undefined) {
    throw new FlattenError(
      `hardlink ${pendingLinks.get(missing)![0]!.path} points to ${missing}, which no layer contains`,
    );
  }
}

/** The first link becomes a regular file with the target's content; the rest link to it. */
async function* linksWithContent(
  links: TarHeader[],
  target: TarHeader,
  body: AsyncIterable<Buffer>,
): AsyncGenerator<WriteEntry> {
  const [first, ...rest] = links;
  yield { header: { ...target, path: first!.path, type: "file", linkname: undefined }, body };
  for (const l of rest) yield { header: { ...l, linkname: first!.path } };
}

function headerOf(e: TarEntry): TarHeader {
  const { body: _body, ...h } = e;
  return h;
}

/** The final rootfs of an image as one tar byte stream (see flattenEntries). */
export function flattenToTar(image: LayeredSource, opts: FlattenOptions = {}): AsyncGenerator<Buffer> {
  return writeTar(flattenEntries(image, opts));
}

export interface UnpackStats {
  entries: number;
  bytes: number;
  skippedDevices: number;
}

/**
 * Apply the layers, oldest first, onto a directory, as `umoci unpack` or a container runtime
 * does: whiteouts delete what older layers wrote, opaque markers empty a directory of older
 * content. Nothing is written outside `dir`: entries that climb out or go through a symlink
 * are refused. Owners are kept when running as root.
 */
export async function flattenToDirectory(
  image: LayeredSource,
  dir: string,
  opts: FlattenOptions & DirectoryWriterOptions = {},
): Promise<UnpackStats> {
  const layers = await image.layers();
  const counter = byteCounters(opts);
  const writer = await DirectoryWriter.open(dir, opts);
  let entries = 0;
  for (const [i, layer] of layers.entries()) {
    const label = `layer ${i + 1}/${layers.length} (${layer.digest})`;
    opts.onLayer?.({ layer: i, digest: layer.digest, phase: "start" });
    writer.startLayer();
    for await (const entry of readTar(await layer.uncompressed(counter(i)), { label })) {
      const name = baseOf(entry.path);
      if (name === OPAQUE) await writer.clearLowerContent(parentOf(entry.path));
      else if (name.startsWith(WHITEOUT)) {
        await writer.removeLower(joinPath(parentOf(entry.path), name.slice(WHITEOUT.length)));
      } else {
        await writer.apply(entry, label);
        entries++;
      }
    }
    opts.onLayer?.({ layer: i, digest: layer.digest, phase: "done" });
  }
  await writer.finish();
  return { entries, bytes: writer.bytesWritten, skippedDevices: writer.skippedDevices };
}

/** The hidden sibling an unpack is staged in: `.NAME.kairos-unpack-XXXXXXXX` next to `NAME`. */
export function unpackStagingName(dir: string): string {
  const target = resolve(dir);
  return join(dirname(target), `.${basename(target)}.kairos-unpack-${randomBytes(4).toString("hex")}`);
}

/**
 * `kairos image unpack`: flatten into a hidden sibling of `dir` and rename it into place only
 * after every layer was read to its last byte and verified, so a failure (a digest mismatch,
 * a refused entry, a full disk) leaves no tree that looks complete: the sibling is removed and
 * `dir` does not appear. `dir` must not exist or be an empty directory (which is replaced).
 */
export async function unpackToDirectory(
  image: LayeredSource,
  dir: string,
  opts: FlattenOptions & DirectoryWriterOptions = {},
): Promise<UnpackStats> {
  const target = resolve(dir);
  const st = await lstat(target).catch(() => undefined);
  if (st) {
    if (!st.isDirectory())
      throw new KairosError(`${dir} exists and is not a directory`, "give a new directory");
    if ((await readdir(target)).length) {
      throw new KairosError(
        `${dir} exists and is not empty`,
        "unpack into a new or empty directory: the tree is moved into place only after every layer is verified",
      );
    }
    if ((await stat(dirname(target))).dev !== st.dev) {
      throw new KairosError(
        `${dir} is a mount point: an unpack cannot be renamed onto it`,
        "unpack into a new directory inside it",
      );
    }
  }
  const staging = unpackStagingName(target);
  try {
    const stats = await flattenToDirectory(image, staging, opts);
    // rename(2) replaces an empty directory; a directory that filled up meanwhile fails (ENOTEMPTY).
    await rename(staging, target);
    return stats;
  } catch (e) {
    await rm(staging, { recursive: true, force: true });
    throw e;
  }
}
