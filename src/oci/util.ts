import { type Readable, Transform, type TransformCallback } from "node:stream";
import type { Progress, Task } from "../sys/index.js";

/** Passes bytes through, reporting the running count. */
export class CountingStream extends Transform {
  count = 0;
  constructor(private readonly onBytes: (n: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    this.onBytes(this.count);
    cb(null, chunk);
  }
}

/** Pipe `src` into a counting stream that updates `task`; errors of `src` propagate. */
export function counted(src: Readable, task: Task): CountingStream {
  const c = new CountingStream((n) => task.update(n));
  src.on("error", (e: Error) => c.destroy(e));
  src.pipe(c);
  return c;
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
