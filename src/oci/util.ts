import {
  pipeline,
  type Readable,
  Transform,
  type TransformCallback,
  type TransformOptions,
} from "node:stream";
import type { Progress, Task } from "../sys/index.js";

/**
 * Read size for local blobs: 1 MiB reads instead of the default 64 KiB cut the thread-pool
 * round trips and decompressor calls for a 250 MB layer from ~4000 to ~250.
 */
export const READ_CHUNK = 1 << 20;

/**
 * How far each stage of a layer read (verify, decompress, verify) may run ahead of the next.
 * With the default 16 KiB the decompressor stopped after one chunk whenever the tar parser
 * was busy, and the two took turns instead of running on both cores. 256 KiB (one gunzip
 * chunk) rather than 1 MiB: in the upgrade bench the agent's peak RSS fell by 4-10 MiB at the
 * same CPU and wall time (docs/benchmarks.md, 2026-12-01 23:52 UTC): less in flight in each stage
 * is also less that survives a young-generation collection and waits for a full one.
 */
export const RUN_AHEAD = { highWaterMark: 256 << 10 } as const;

/** Passes bytes through, reporting the running count. */
export class CountingStream extends Transform {
  count = 0;
  constructor(
    private readonly onBytes: (n: number) => void,
    options?: TransformOptions,
  ) {
    super(options);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    this.onBytes(this.count);
    cb(null, chunk);
  }
}

/** Pipe `src` into a counting stream that updates `task`; errors of `src` propagate. */
export function counted(src: Readable, task: Task): CountingStream {
  return pipeline(src, new CountingStream((n) => task.update(n)), () => {});
}

/** "sha256:0123456789ab" — a short digest for progress lines. */
export function shortDigest(d: string): string {
  const i = d.indexOf(":");
  return d.slice(0, i + 13);
}

/** Options shared by the read and write paths. */
export interface TransferOptions {
  progress?: Progress;
  signal?: AbortSignal;
  /** Blobs transferred at once (default 3). */
  concurrency?: number;
}

/**
 * Run `fn` over `items` with at most `limit` running at once. After the first failure no new
 * item starts; the ones running are awaited, then the first error is thrown.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async () => {
    while (!failed && next < items.length) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        if (!failed) {
          failed = true;
          firstError = e;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed) throw firstError;
}

/** Layers with duplicate digests removed (an image may repeat a layer). */
export function uniqueByDigest<T extends { digest: string }>(items: readonly T[]): T[] {
  const seen = new Set<string>();
  return items.filter((i) => !seen.has(i.digest) && !!seen.add(i.digest));
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}
