/** The kinds of tar entry we read and write. */
export type EntryType = "file" | "hardlink" | "symlink" | "chardev" | "blockdev" | "directory" | "fifo";

/**
 * One tar entry's metadata, after ustar/pax/GNU extensions are folded in.
 * `path` is normalized: relative to the archive root, no leading "./" or "/", no trailing "/",
 * no "." or ".." components (the reader refuses entries whose paths contain ".." or are absolute).
 */
export interface TarHeader {
  path: string;
  type: EntryType;
  /** Permission bits including setuid/setgid/sticky (mask 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  uname?: string;
  gname?: string;
  /** Content length in bytes; 0 for everything but regular files. */
  size: number;
  /** Modification time in seconds since the epoch (may be fractional, from pax). */
  mtime: number;
  /** Symlink target exactly as stored, or hardlink target as a normalized path. */
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  /** Extended attributes with byte-exact values (pax SCHILY.xattr.* / LIBARCHIVE.xattr.*). */
  xattrs?: Map<string, Buffer>;
}

/** An entry as the reader yields it: the body must be consumed (or ignored) before the next entry. */
export interface TarEntry extends TarHeader {
  /** The content; for non-files an empty iterable. Reading it after moving on throws. */
  body: AsyncIterable<Buffer>;
}
