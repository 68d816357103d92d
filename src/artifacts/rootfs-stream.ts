import { KairosError } from "../sys/index.js";
import { packDirectory, readTar, type TarHeader, type WriteEntry, writeTar } from "../tar/index.js";

/**
 * Squashfs stores only the user., trusted. and security. xattr namespaces. Others (POSIX ACLs
 * as system.posix_acl_*, which systemd-tmpfiles sets on /var/log/journal) make tar2sqfs abort,
 * and mksquashfs drops them with a warning; we drop them too and count them.
 */
export function squashfsKeepsXattr(name: string): boolean {
  return name.startsWith("user.") || name.startsWith("trusted.") || name.startsWith("security.");
}

export interface PrepareOptions {
  /** A host directory whose files are added to the rootfs, replacing same-named entries. */
  overlayDir?: string;
  /** Owner for overlay entries (default root, 0:0); undefined keeps the host owners. */
  overlayOwner?: { uid: number; gid: number } | null;
  /** Label for tar errors. */
  label?: string;
  /** Told about every dropped xattr name once. */
  onDroppedXattr?: (name: string) => void;
  /** Sees the final entries just before they are encoded (e.g. RootfsIndex.tap). */
  tap?: (entries: AsyncIterable<WriteEntry>) => AsyncIterable<WriteEntry>;
}

/**
 * Re-encode a rootfs tar stream for tar2sqfs: drop xattrs squashfs cannot store and merge an
 * overlay directory (overlay entries win; directories that exist in both keep the image's
 * metadata). Bodies stream through untouched; nothing is staged on disk.
 */
export function prepareRootfsTar(source: RootfsStream, opts: PrepareOptions = {}): AsyncIterable<Buffer> {
  const entries = prepareEntries(source, opts);
  return writeTar(opts.tap ? opts.tap(entries) : entries);
}

/**
 * A rootfs as raw tar bytes (a file, `docker export`) or as entries already decoded (the
 * flattener's output, which then skips an encode/decode round trip).
 */
export type RootfsStream =
  | { kind: "tar"; bytes: AsyncIterable<Uint8Array> }
  | { kind: "entries"; entries: AsyncIterable<WriteEntry> };

async function* tarEntries(bytes: AsyncIterable<Uint8Array>, label?: string): AsyncGenerator<WriteEntry> {
  for await (const e of readTar(bytes, { label })) {
    const { body, ...header } = e;
    yield { header, body: header.type === "file" ? body : undefined };
  }
}

async function* prepareEntries(source: RootfsStream, opts: PrepareOptions): AsyncGenerator<WriteEntry> {
  const dropped = new Set<string>();
  const clean = (e: TarHeader) => {
    if (!e.xattrs || e.xattrs.size === 0) return e.xattrs;
    let keep: Map<string, Buffer> | undefined;
    for (const [k, v] of e.xattrs) {
      if (squashfsKeepsXattr(k)) {
        keep ??= new Map();
        keep.set(k, v);
      } else if (!dropped.has(k)) {
        dropped.add(k);
        opts.onDroppedXattr?.(k);
      }
    }
    return keep;
  };

  // The overlay is read first (it is small) so that replaced image entries can be skipped.
  const overlay: WriteEntry[] = [];
  if (opts.overlayDir) {
    const owner = opts.overlayOwner === undefined ? { uid: 0, gid: 0 } : opts.overlayOwner;
    for await (const w of packDirectory(opts.overlayDir)) {
      const header = owner
        ? { ...w.header, uid: owner.uid, gid: owner.gid, uname: "root", gname: "root" }
        : w.header;
      overlay.push({ header, body: w.body });
    }
  }
  const overlayPaths = new Map(overlay.map((w) => [w.header.path, w]));
  const imageDirs = new Set<string>();

  const entries = source.kind === "tar" ? tarEntries(source.bytes, opts.label) : source.entries;
  for await (const { header, body } of entries) {
    const replacement = overlayPaths.get(header.path);
    if (replacement) {
      if (header.type === "directory" && replacement.header.type === "directory") {
        imageDirs.add(header.path);
      } else if (
        header.type === "symlink" &&
        replacement.header.type === "directory" &&
        overlay.some((w) => w.header.path.startsWith(`${header.path}/`))
      ) {
        // e.g. overlay lib/firmware/x while the image has lib -> usr/lib (merged /usr).
        throw new KairosError(
          `the rootfs overlay has a directory ${header.path}/ where the image has a symlink (${header.path} -> ${header.linkname})`,
          "put those files under the symlink's target in the overlay",
        );
      } else {
        continue; // replaced by the overlay; an unread body is skipped by the reader
      }
    }
    yield { header: { ...header, xattrs: clean(header) }, body };
  }
  for (const w of overlay) {
    if (w.header.type === "directory" && imageDirs.has(w.header.path)) continue;
    yield { header: { ...w.header, xattrs: clean(w.header) }, body: w.body };
  }
}
