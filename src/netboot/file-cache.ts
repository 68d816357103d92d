/**
 * Small served files kept in memory, shared by every transfer: the boot loaders (ipxe.efi,
 * undionly.kpxe) that each PXE client fetches are read once instead of once per client, and a
 * transfer of them needs no file handle and no thread-pool trip per block. An entry is used
 * only while the file's inode, size, mtime and ctime are what the caller just saw: a file
 * replaced by rename has another inode, and one rewritten in place with its old size and mtime
 * put back (`cp -p`, `rsync -t`) still has a new ctime, which no tool can set. The bytes held
 * are bounded, the oldest entries go first.
 */
import { readFile } from "node:fs/promises";

export interface FileCacheLimits {
  /** Largest file kept (default 8 MiB: iPXE binaries are ~1 MiB). */
  maxFileBytes?: number;
  /** Bytes kept in all (default 64 MiB). */
  maxTotalBytes?: number;
}

export interface FileStamp {
  path: string;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

interface Entry {
  stamp: FileStamp;
  data: Promise<Buffer>;
}

function sameFile(a: FileStamp, b: FileStamp): boolean {
  return a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs && a.ctimeMs === b.ctimeMs;
}

export class FileCache {
  private readonly entries = new Map<string, Entry>();
  private total = 0;
  private readonly maxFile: number;
  private readonly maxTotal: number;

  constructor(limits: FileCacheLimits = {}) {
    this.maxFile = limits.maxFileBytes ?? 8 << 20;
    this.maxTotal = limits.maxTotalBytes ?? 64 << 20;
  }

  /** Bytes held (or being read). */
  bytes(): number {
    return this.total;
  }

  /**
   * The file's bytes when it is small enough to keep, else undefined (stream it from disk).
   * Concurrent requests for the same file share one read.
   */
  get(f: FileStamp): Promise<Buffer> | undefined {
    if (f.size > this.maxFile || f.size > this.maxTotal) return undefined;
    const hit = this.entries.get(f.path);
    if (hit && sameFile(hit.stamp, f)) {
      // Most recently used last: the Map's order is the eviction order.
      this.entries.delete(f.path);
      this.entries.set(f.path, hit);
      return hit.data;
    }
    if (hit) this.drop(f.path, hit);
    while (this.total + f.size > this.maxTotal) {
      const [oldest, e] = this.entries.entries().next().value as [string, Entry];
      this.drop(oldest, e);
    }
    const data = readFile(f.path).then((b) => {
      // Changed between the caller's stat and our read: serve what was read, keep nothing.
      if (b.length !== f.size) this.forget(f.path, entry);
      return b;
    });
    const entry: Entry = { stamp: { ...f }, data };
    data.catch(() => this.forget(f.path, entry));
    this.entries.set(f.path, entry);
    this.total += f.size;
    return data;
  }

  private forget(path: string, e: Entry): void {
    if (this.entries.get(path) === e) this.drop(path, e);
  }

  private drop(path: string, e: Entry): void {
    this.entries.delete(path);
    this.total -= e.stamp.size;
  }
}
