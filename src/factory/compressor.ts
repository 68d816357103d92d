import { once } from "node:events";
import type { Readable, Writable } from "node:stream";
import { createGzip } from "node:zlib";
import { KairosError, start } from "../sys/index.js";

export type Compression = "zstd" | "gzip" | "none";

/**
 * A compressor fed piece by piece: the initramfs is streamed into it as it is built, so the
 * uncompressed archive (~19 MB for the default module set) is never held whole, nor copied
 * into one buffer that lingers until V8's next full collection. Same bytes as compressing the
 * whole archive at once: zstd (also multi-threaded) and deflate do not depend on how their
 * input was split.
 */
export interface Compressor {
  /** Write pieces in order; resolves when the compressor has taken them (backpressure). */
  write(pieces: readonly Buffer[]): Promise<void>;
  /** End the input and return the compressed bytes. */
  end(): Promise<Buffer>;
  /**
   * Give up: stop the compressor without compressing what it was given (a build that failed
   * part way). Resolves once it is gone; end() after it rejects.
   */
  abort(): Promise<void>;
}

/**
 * Start a compressor. `zstd` is the program run for zstd (default: zstd on PATH); levels are
 * checked here, since zstd clamps an out-of-range level without a word.
 */
export function startCompressor(
  compression: Compression,
  level?: number,
  opts: { zstd?: string } = {},
): Compressor {
  const [min, max] = compression === "gzip" ? [0, 9] : [1, 19];
  if (level !== undefined && (!Number.isInteger(level) || level < min || level > max)) {
    throw new KairosError(
      `${compression} level ${level} is out of range`,
      `use a level from ${min} to ${max}`,
    );
  }
  if (compression === "none") {
    const kept: Buffer[] = [];
    let aborted = false;
    return {
      write: async (pieces) => {
        kept.push(...pieces);
      },
      end: async () => {
        if (aborted) throw new KairosError("the compressor was aborted");
        return Buffer.concat(kept);
      },
      abort: async () => {
        aborted = true;
        kept.length = 0;
      },
    };
  }
  if (compression === "gzip") {
    const gz = createGzip({ level: level ?? 9 });
    const ended = new Promise<void>((resolve, reject) => {
      gz.once("end", resolve);
      gz.once("close", () => reject(new KairosError("the compressor was aborted")));
    });
    return streamCompressor(gz, gz, ended, () => {
      gz.destroy();
    });
  }
  const child = start(opts.zstd ?? "zstd", [`-${level ?? 12}`, "-T2", "-q", "-c", "--check"]);
  return streamCompressor(child.stdin, child.stdout, child.done, () => child.kill("SIGKILL"));
}

function streamCompressor(
  input: Writable,
  output: Readable,
  done: Promise<void>,
  stop: () => void,
): Compressor {
  const out: Buffer[] = [];
  output.on("data", (c: Buffer) => out.push(c));
  let failure: Error | undefined;
  // A compressor that dies makes `done` reject; keep the first error for write() to report.
  done.catch((e: Error) => {
    failure ??= e;
  });
  input.on("error", (e: Error) => {
    failure ??= e;
  });
  // A write that fails (EPIPE) means the compressor went away: its exit status says why.
  const reason = (): Promise<Error> =>
    done.then(
      () => failure ?? new Error("compressor input failed"),
      (e: Error) => e,
    );
  let ended: Promise<Buffer> | undefined;
  return {
    async write(pieces) {
      for (const p of pieces) {
        if (failure) throw await reason();
        if (p.length > 0 && !input.write(p)) {
          // 'error' rejects once(); the failure is reported from `reason` instead.
          await Promise.race([once(input, "drain").catch(() => undefined), done.catch(() => undefined)]);
        }
      }
      if (failure) throw await reason();
    },
    end() {
      ended ??= (async () => {
        input.end();
        await done;
        if (failure) throw await reason();
        return Buffer.concat(out);
      })();
      return ended;
    },
    async abort() {
      failure ??= new KairosError("the compressor was aborted");
      ended ??= Promise.reject(failure);
      ended.catch(() => undefined);
      stop();
      await done.catch(() => undefined);
      out.length = 0;
    },
  };
}
