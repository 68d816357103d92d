import { KairosError } from "../sys/index.js";

/** File type bits of st_mode as the newc format stores them. */
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;
const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;

export interface CpioEntryOptions {
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
}

/**
 * A writer for the "newc" (SVR4 without CRC) cpio format the kernel unpacks as an initramfs.
 * Entries are kept in memory until taken: `take()` hands over the bytes written since the last
 * take (so a caller can stream them to a compressor and not hold the archive), `finish()`
 * writes the trailer and returns what was not taken (the whole archive for a caller that never
 * takes).
 * Paths are relative, "/"-separated; ".." components and empty paths are refused.
 * `mtime` defaults to SOURCE_DATE_EPOCH (or 0) so the same input gives the same bytes.
 */
export class CpioWriter {
  private readonly chunks: Buffer[] = [];
  private size = 0;
  private ino = 721;
  private readonly seen = new Set<string>();
  private readonly defaultMtime: number;
  private finished = false;

  constructor(opts: { mtime?: number } = {}) {
    const env = Number.parseInt(process.env.SOURCE_DATE_EPOCH ?? "", 10);
    this.defaultMtime = opts.mtime ?? (Number.isFinite(env) ? env : 0);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.size;
  }

  /** Has `path` (normalized) been written? */
  has(path: string): boolean {
    return this.seen.has(cpioPath(path));
  }

  directory(path: string, opts: CpioEntryOptions = {}): void {
    this.entry(path, S_IFDIR | (opts.mode ?? 0o755), Buffer.alloc(0), opts, 2);
  }

  file(path: string, data: Buffer | string, opts: CpioEntryOptions = {}): void {
    this.entry(path, S_IFREG | (opts.mode ?? 0o644), Buffer.from(data), opts);
  }

  symlink(path: string, target: string, opts: CpioEntryOptions = {}): void {
    if (target === "" || target.includes("\0")) throw new KairosError(`cpio: bad symlink target for ${path}`);
    this.entry(path, S_IFLNK | 0o777, Buffer.from(target), opts);
  }

  device(
    path: string,
    kind: "char" | "block",
    major: number,
    minor: number,
    opts: CpioEntryOptions = {},
  ): void {
    this.entry(path, (kind === "char" ? S_IFCHR : S_IFBLK) | (opts.mode ?? 0o600), Buffer.alloc(0), opts, 1, [
      major,
      minor,
    ]);
  }

  /** The bytes written since the last take, in archive order; the writer lets go of them. */
  take(): Buffer[] {
    return this.chunks.splice(0);
  }

  /** Write the trailer and return the bytes not taken yet. */
  finish(): Buffer {
    if (!this.finished) {
      this.header("TRAILER!!!", 0, 0, 0, 0, 1, 0, [0, 0], 0);
      this.finished = true;
    }
    return Buffer.concat(this.take());
  }

  private entry(
    path: string,
    mode: number,
    data: Buffer,
    opts: CpioEntryOptions,
    nlink = 1,
    rdev: [number, number] = [0, 0],
  ): void {
    if (this.finished) throw new Error("cpio: archive already finished");
    const name = cpioPath(path);
    if (this.seen.has(name)) throw new KairosError(`cpio: duplicate entry ${name}`);
    this.seen.add(name);
    this.header(
      name,
      mode,
      opts.uid ?? 0,
      opts.gid ?? 0,
      opts.mtime ?? this.defaultMtime,
      nlink,
      data.length,
      rdev,
      this.ino++,
    );
    this.push(data);
    this.pad();
  }

  private header(
    name: string,
    mode: number,
    uid: number,
    gid: number,
    mtime: number,
    nlink: number,
    filesize: number,
    rdev: [number, number],
    ino: number,
  ): void {
    const nameBuf = Buffer.from(`${name}\0`);
    const hex = (n: number) => {
      if (!Number.isInteger(n) || n < 0 || n > 0xffffffff)
        throw new KairosError(`cpio: field out of range (${n}) for ${name}`);
      return n.toString(16).padStart(8, "0");
    };
    const fields = [
      ino,
      mode,
      uid,
      gid,
      nlink,
      Math.floor(mtime),
      filesize,
      0,
      0,
      rdev[0],
      rdev[1],
      nameBuf.length,
      0,
    ];
    this.push(Buffer.from(`070701${fields.map(hex).join("")}`, "ascii"));
    this.push(nameBuf);
    this.pad();
  }

  private push(b: Buffer): void {
    if (b.length === 0) return;
    this.chunks.push(b);
    this.size += b.length;
  }

  private pad(): void {
    const rem = this.size % 4;
    if (rem) this.push(Buffer.alloc(4 - rem));
  }
}

/** Normalize and check a path for the archive: relative, no "..", no NUL. */
export function cpioPath(path: string): string {
  if (path.includes("\0")) throw new KairosError(`cpio: NUL in path ${JSON.stringify(path)}`);
  const parts = path.split("/").filter((c) => c !== "" && c !== ".");
  if (parts.includes("..")) throw new KairosError(`cpio: refusing path with '..': ${path}`);
  if (parts.length === 0) throw new KairosError(`cpio: empty path ${JSON.stringify(path)}`);
  return parts.join("/");
}
