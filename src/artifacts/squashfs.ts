import { randomBytes } from "node:crypto";
import { constants, createWriteStream } from "node:fs";
import { mkdtemp, open, rename, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { findTool, formatCommand, KairosError, requireTool, run, type Started, start } from "../sys/index.js";

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

/** Pieces gathered before one vectored write to the packer. */
export const FEED_BATCH_BYTES = 1 << 20;
const BATCH_PIECES = 1024;
/**
 * Bytes we let queue in user space before waiting for the packer: absorbs bursts on both sides
 * (with the 1 MiB pipe and a batch in flight). Every queued piece holds the decompressor's
 * buffer it is a slice of, and a queue that outlives a young-generation collection sends its
 * buffers to the old generation, where they wait for a full collection: 2 MiB instead of 8 took
 * ~7 MiB off the agent's peak RSS in an upgrade, at the same CPU time (docs/benchmarks.md).
 */
export const FEED_QUEUE_BYTES = 2 << 20;

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
 * privileges are needed. tar2sqfs writes a hidden temporary name beside `out`, renamed to
 * `out` only once the whole stream was read (and so every layer verified) and tar2sqfs exited
 * 0; on failure it is removed, and `out` is not touched.
 */
export async function squashfsFromTar(
  tar: Readable | AsyncIterable<Buffer>,
  out: string,
  opts: SquashfsOptions = {},
): Promise<{ tarBytes: number }> {
  const dir = await mkdtemp(join(tmpdir(), "kairos-tar2sqfs-"));
  const fifo = join(dir, "rootfs.tar");
  const partial = join(dirname(out), `.${basename(out)}.tmp-${randomBytes(4).toString("hex")}`);
  try {
    await run("mkfifo", ["-m", "600", fifo]);
    const child = startOnFifo(fifo, tar2sqfsArgs(partial, opts), opts.signal);
    const sink = createWriteStream(fifo, { highWaterMark: FEED_BATCH_BYTES });
    // feedPacker() reports the first error; writes still queued when the packer dies fail afterwards
    // (EPIPE, after feedPacker has returned and removed its listener). Without a listener of our own
    // that late 'error' event would be an uncaught exception that kills the process.
    sink.on("error", () => {});
    // If tar2sqfs dies before it opens the FIFO, our open would wait for a reader forever:
    // open it for reading once, so that the writer gets EPIPE instead.
    child.done.catch(async () => {
      try {
        await (await open(fifo, constants.O_RDONLY | constants.O_NONBLOCK)).close();
      } catch {
        // the FIFO is gone: nothing waits on it
      }
    });
    let tarBytes = 0;
    try {
      tarBytes = await feedPacker(tar, sink, opts.onBytes);
    } catch (err) {
      sink.destroy();
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
    await rename(partial, out);
    return { tarBytes };
  } finally {
    await rm(partial, { force: true });
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Start tar2sqfs reading the FIFO. The tar goes through a FIFO rather than the stdin Node gives
 * a child (a socket pair with ~200 KiB of buffer that only the main thread refills): writes to
 * the FIFO block in the thread pool, so the packer keeps reading while our thread parses, and
 * perl (part of every Debian) grows the pipe to 1 MiB with F_SETPIPE_SZ before exec'ing the
 * packer. Measured on the default image under load: 12.0 s instead of 16-19 s for the squashfs
 * phase. Without perl, a plain shell redirection (64 KiB pipe) still gets most of it.
 */
function startOnFifo(fifo: string, args: string[], signal?: AbortSignal): Started {
  const tar2sqfs = requireTool("tar2sqfs");
  const display = formatCommand("tar2sqfs", args);
  const child = findTool("perl")
    ? start("perl", ["-e", PERL_ON_FIFO, fifo, tar2sqfs, ...args], { signal, display })
    : start("sh", ["-c", 'f=$1; shift; exec "$@" < "$f"', "sh", fifo, tar2sqfs, ...args], {
        signal,
        display,
      });
  child.stdin.end();
  return child;
}

/** Open the FIFO as stdin, ask for a 1 MiB pipe (F_SETPIPE_SZ is 1031; best effort), exec the tool. */
const PERL_ON_FIFO =
  'my $f = shift; open(STDIN, "<", $f) or die "open $f: $!\\n"; fcntl(STDIN, 1031, 1048576); exec { $ARGV[0] } @ARGV or die "exec $ARGV[0]: $!\\n";';

/**
 * Write a stream of many small pieces (512-byte headers, small files) to `sink` in vectored
 * writes: pieces are batched under cork() so that one writev carries ~1 MiB, without copying
 * them into one buffer (a concat copied the whole rootfs once more). Up to FEED_QUEUE_BYTES may
 * wait in user space (plus one batch), so a slow moment on either side does not stall the other.
 * Returns the byte count. Exported for the test of that bound.
 */
export async function feedPacker(
  src: AsyncIterable<Buffer>,
  sink: Writable,
  onBytes?: (total: number) => void,
): Promise<number> {
  let failure: Error | undefined;
  const onError = (e: Error) => {
    failure ??= e;
  };
  sink.on("error", onError);
  const drained = () =>
    new Promise<void>((resolve, reject) => {
      const done = (err?: Error) => {
        sink.off("drain", ok);
        sink.off("error", done);
        sink.off("close", closed);
        if (err) reject(err);
        else resolve();
      };
      const ok = () => done();
      const closed = () =>
        done(failure ?? Object.assign(new Error("packer closed its input"), { code: "EPIPE" }));
      sink.on("drain", ok);
      sink.on("error", done);
      sink.on("close", closed);
    });
  let total = 0;
  let batch: Buffer[] = [];
  let batchBytes = 0;
  const flush = () => {
    sink.cork();
    for (const b of batch) sink.write(b);
    sink.uncork();
    batch = [];
    batchBytes = 0;
    onBytes?.(total);
  };
  try {
    for await (const chunk of src) {
      if (failure) throw failure;
      if (chunk.length === 0) continue;
      total += chunk.length;
      batch.push(chunk);
      batchBytes += chunk.length;
      if (batchBytes >= FEED_BATCH_BYTES || batch.length >= BATCH_PIECES) {
        flush();
        if (sink.writableLength >= FEED_QUEUE_BYTES) await drained();
      }
    }
    if (failure) throw failure;
    if (batch.length) flush();
    await new Promise<void>((resolve, reject) => {
      sink.end((err?: Error | null) => (err ? reject(err) : resolve()));
    });
    if (failure) throw failure;
    return total;
  } finally {
    sink.off("error", onError);
  }
}

function isPipeError(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === "EPIPE" || code === "ERR_STREAM_PREMATURE_CLOSE" || code === "ERR_STREAM_DESTROYED";
}
