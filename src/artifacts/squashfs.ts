import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KairosError, start } from "../sys/index.js";

/** How the squashfs is compressed. Defaults match the measured sweet spot on a 2-core host. */
export interface SquashfsOptions {
  /** zstd compression level (default 3). */
  level?: number;
  /** Block size in bytes (default 1 MiB). */
  blockSize?: number;
  /** Compressor threads (default 2). */
  jobs?: number;
  signal?: AbortSignal;
  /** Called as tar bytes are fed to the packer (for progress). */
  onBytes?: (total: number) => void;
}

const COALESCE_BYTES = 1 << 20;

export const SQUASHFS_DEFAULTS = { level: 3, blockSize: 1024 * 1024, jobs: 2 } as const;

/** The tar2sqfs argument list for `out` (exported for tests and the benchmark). */
export function tar2sqfsArgs(out: string, opts: SquashfsOptions = {}): string[] {
  const level = opts.level ?? SQUASHFS_DEFAULTS.level;
  const blockSize = opts.blockSize ?? SQUASHFS_DEFAULTS.blockSize;
  const jobs = opts.jobs ?? SQUASHFS_DEFAULTS.jobs;
  if (!Number.isInteger(level) || level < 1 || level > 22) {
    throw new KairosError(`squashfs zstd level ${level} is out of range`, "use a level from 1 to 22");
  }
  if (
    !Number.isInteger(blockSize) ||
    blockSize < 4096 ||
    blockSize > 1 << 20 ||
    blockSize & (blockSize - 1)
  ) {
    throw new KairosError(
      `squashfs block size ${blockSize} is invalid`,
      "use a power of two from 4096 to 1048576",
    );
  }
  return [
    "--compressor",
    "zstd",
    "--comp-extra",
    `level=${level}`,
    "--block-size",
    String(blockSize),
    "--num-jobs",
    String(Math.max(1, jobs)),
    "--no-skip",
    "--quiet",
    "--force",
    out,
  ];
}

/**
 * Pack a rootfs tar stream into a squashfs image at `out` with tar2sqfs: nothing is unpacked to
 * disk, and owners, modes, device nodes, hardlinks and xattrs come from the tar headers, so no
 * privileges are needed. On failure the partial `out` is left for the caller to remove.
 */
export async function squashfsFromTar(
  tar: Readable | AsyncIterable<Buffer>,
  out: string,
  opts: SquashfsOptions = {},
): Promise<{ tarBytes: number }> {
  const child = start("tar2sqfs", tar2sqfsArgs(out, opts), { signal: opts.signal });
  let tarBytes = 0;
  // Coalesce the many small pieces of a tar stream (512-byte headers, small files) into ~1 MiB
  // writes: one pipe write per piece costs more than the packing itself.
  const counted = async function* (src: AsyncIterable<Buffer>) {
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    for await (const chunk of src) {
      tarBytes += chunk.length;
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes >= COALESCE_BYTES) {
        opts.onBytes?.(tarBytes);
        yield pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
        pending = [];
        pendingBytes = 0;
      }
    }
    if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
    opts.onBytes?.(tarBytes);
  };
  const source = tar instanceof Readable ? tar : Readable.from(tar);
  const feeding = pipeline(source, counted, child.stdin);
  try {
    await feeding;
  } catch (err) {
    // If tar2sqfs died, its exit status is the real error, not our EPIPE. Otherwise the source
    // failed: kill the packer so that it cannot finish a truncated image.
    if (isPipeError(err)) {
      await child.done;
      throw err;
    }
    child.kill("SIGKILL");
    await child.done.catch(() => {});
    throw err;
  }
  await child.done;
  return { tarBytes };
}

function isPipeError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "EPIPE" || code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ERR_STREAM_DESTROYED";
}
