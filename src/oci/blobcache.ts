import { type FileHandle, open as openFile, statfs } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { BlobOpener } from "./image.js";
import { makeTempDir } from "./tmp.js";
import type { Descriptor } from "./types.js";
import { READ_CHUNK } from "./util.js";

/** Free space a cached blob must leave on the cache's filesystem (bytes). */
const KEEP_FREE = 1 << 30;

/** One blob being downloaded into (or already in) the cache directory. */
class CachedBlob {
  written = 0;
  done = false;
  error?: Error;
  private readonly waiters = new Set<() => void>();
  private source?: Readable;

  constructor(readonly file: string) {}

  /** Download the whole blob into the file, whoever reads it and however far. */
  async fill(fh: FileHandle, open: () => Promise<Readable>): Promise<void> {
    try {
      this.source = await open();
      for await (const chunk of this.source) {
        const b = chunk as Buffer;
        let off = 0;
        while (off < b.length) off += (await fh.write(b, off, b.length - off)).bytesWritten;
        this.written += b.length;
        this.wake();
      }
      this.done = true;
    } catch (err) {
      this.error = err instanceof Error ? err : new Error(String(err));
    } finally {
      await fh.close();
      this.wake();
    }
  }

  stop(): void {
    this.source?.destroy();
  }

  private wake(): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.waiters.add(resolve));
  }

  /** The blob from the file, following the download while it is still running. */
  reader(): Readable {
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      const fh = await openFile(self.file, "r");
      try {
        let pos = 0;
        for (;;) {
          if (pos < self.written) {
            const want = Math.min(READ_CHUNK, self.written - pos);
            const buf = Buffer.allocUnsafe(want);
            const { bytesRead } = await fh.read(buf, 0, want, pos);
            pos += bytesRead;
            yield bytesRead === want ? buf : buf.subarray(0, bytesRead);
            continue;
          }
          if (self.error) throw self.error;
          if (self.done) return;
          await self.changed();
        }
      } finally {
        await fh.close();
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }
}

/**
 * A per-command cache of the blobs of remote images: the first read of a blob downloads it in
 * full into a private temporary directory (the download goes on when that reader stops early,
 * e.g. a check that found what it looked for), and every read, the first included, is served
 * from the file. So a command that reads a layer twice (a check, then the build) fetches it
 * once. Bounded: a blob that would leave less than 1 GiB free, or pass `maxBytes` in all, is
 * not cached but read from the source each time. Removed by close() (or at process exit).
 * Readers verify digests as before: the cache only moves bytes.
 */
export class BlobCache {
  /** Digest → the blob in the cache, or undefined when it was not cached (no room). */
  private readonly blobs = new Map<string, Promise<CachedBlob | undefined>>();
  private cached = 0;
  private closed = false;

  private constructor(
    private readonly dir: string,
    private readonly cleanup: () => Promise<void>,
    private readonly maxBytes: number,
    private readonly freeBytes: (dir: string) => Promise<number>,
  ) {}

  /** `freeBytes`: free space of the cache's filesystem (default: statfs). */
  static async create(
    opts: { parent?: string; maxBytes?: number; freeBytes?: (dir: string) => Promise<number> } = {},
  ): Promise<BlobCache> {
    const { dir, cleanup } = await makeTempDir("blobs", opts.parent);
    return new BlobCache(
      dir,
      cleanup,
      opts.maxBytes ?? Number.POSITIVE_INFINITY,
      opts.freeBytes ??
        (async (d) => {
          const fs = await statfs(d);
          return fs.bavail * fs.bsize;
        }),
    );
  }

  /** Bytes of blobs held (or being downloaded). */
  get bytes(): number {
    return this.cached;
  }

  /** An opener that goes through the cache in front of `open`. */
  wrap(open: BlobOpener): BlobOpener {
    return async (desc) => {
      let entry = this.blobs.get(desc.digest);
      const known = await entry;
      if (known?.error) {
        this.blobs.delete(desc.digest);
        this.cached -= desc.size;
        entry = undefined;
      } else if (entry && !known) return open(desc);
      if (!entry) {
        if (this.closed) return open(desc);
        // Registered before the first await, so concurrent opens share one download.
        entry = this.start(desc, open);
        this.blobs.set(desc.digest, entry);
      }
      const blob = await entry;
      return blob ? blob.reader() : open(desc);
    };
  }

  private async start(desc: Descriptor, open: BlobOpener): Promise<CachedBlob | undefined> {
    if (this.cached + desc.size > this.maxBytes) return undefined;
    this.cached += desc.size;
    // Against everything this cache has taken on, not just this blob: downloads that run side
    // by side have not written their bytes yet, so free space alone would admit them all.
    // (Blobs already written count twice: conservative, the blob is then read uncached.)
    if ((await this.freeBytes(this.dir)) - this.cached < KEEP_FREE) {
      this.cached -= desc.size;
      return undefined;
    }
    const blob = new CachedBlob(join(this.dir, desc.digest.replace(":", "-")));
    // Created before any reader opens it.
    const fh = await openFile(blob.file, "w");
    void blob.fill(fh, () => open(desc));
    return blob;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const b of this.blobs.values()) (await b)?.stop();
    this.blobs.clear();
    await this.cleanup();
  }
}
