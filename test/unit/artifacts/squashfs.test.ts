import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { type TestContext, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  FEED_BATCH_BYTES,
  FEED_QUEUE_BYTES,
  feedPacker,
  squashfsFromTar,
} from "../../../src/artifacts/squashfs.js";
import { run } from "../../../src/sys/index.js";
import { type WriteEntry, writeTar } from "../../../src/tar/index.js";
import { tempDir } from "../../helpers/tmp.js";

/** The FIFO directories left in a private TMPDIR (other builds on the host use their own). */
async function privateTmp(t: TestContext): Promise<() => Promise<string[]>> {
  const dir = await tempDir(t);
  const saved = process.env.TMPDIR;
  process.env.TMPDIR = dir;
  t.after(() => {
    if (saved === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = saved;
  });
  assert.equal(tmpdir(), dir);
  return async () => (await readdir(dir)).filter((n) => n.startsWith("kairos-tar2sqfs-"));
}

function files(n: number, size: number): WriteEntry[] {
  return Array.from({ length: n }, (_, i) => {
    const body = Buffer.alloc(size, i % 251);
    return {
      header: { path: `d/f${i}`, type: "file", mode: 0o644, uid: 0, gid: 0, size, mtime: 1_700_000_000 },
      body,
    } satisfies WriteEntry;
  });
}

test("many small pieces reach tar2sqfs intact (vectored writes through the FIFO)", async (t) => {
  const dir = await tempDir(t);
  const img = join(dir, "r.sqfs");
  const fifoDirs = await privateTmp(t);
  const { tarBytes } = await squashfsFromTar(writeTar(files(3000, 700)), img);
  assert.equal(tarBytes, 3000 * (512 + 1024) + 1024);
  const listing = (await run("unsquashfs", ["-lc", img])).stdout.trim().split("\n");
  assert.equal(listing.length, 3000);
  const one = (await run("unsquashfs", ["-cat", img, "d/f1234"])).stdout;
  assert.equal(one, Buffer.alloc(700, 1234 % 251).toString());
  assert.deepEqual(await fifoDirs(), [], "the FIFO directory is removed");
});

test("tar2sqfs failing at once is reported as tar2sqfs, without hanging", async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(
    squashfsFromTar(writeTar(files(10, 100)), join(dir, "missing-dir", "r.sqfs")),
    (err: Error) => {
      assert.match(err.message, /^tar2sqfs .*exited with code/);
      assert.doesNotMatch(err.message, /perl/);
      return true;
    },
  );
});

test("tar2sqfs failing mid-stream (an xattr squashfs cannot store) is its own error", async (t) => {
  const dir = await tempDir(t);
  const entries: WriteEntry[] = [
    ...files(200, 4096),
    {
      header: {
        path: "acl",
        type: "directory",
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        xattrs: new Map([["system.posix_acl_default", Buffer.from([2, 0, 0, 0])]]),
      },
    },
    ...files(200, 4096).map((e) => ({ ...e, header: { ...e.header, path: `e/${e.header.path}` } })),
  ];
  await assert.rejects(squashfsFromTar(writeTar(entries), join(dir, "r.sqfs")), /tar2sqfs[\s\S]*posix_acl/);
});

test("a failing source kills the packer and leaves no FIFO behind", async (t) => {
  const dir = await tempDir(t);
  const fifoDirs = await privateTmp(t);
  async function* broken(): AsyncGenerator<Buffer> {
    yield* writeTar(files(5, 100)) as AsyncGenerator<Buffer>;
    throw new Error("source broke");
  }
  await assert.rejects(squashfsFromTar(broken(), join(dir, "r.sqfs")), /source broke/);
  assert.deepEqual(await fifoDirs(), []);
});

test("the feed never queues more than FEED_QUEUE_BYTES plus one batch for a slow packer", async () => {
  const chunk = 64 * 1024;
  const total = 6 * FEED_QUEUE_BYTES;
  let maxQueued = 0;
  let written = 0;
  // A packer that takes 2 ms per vectored write: the source is much faster, so only the
  // feed's own wait keeps the queue bounded (without it the whole input would queue).
  const sink = new Writable({
    highWaterMark: FEED_BATCH_BYTES,
    writev(chunks, cb) {
      for (const c of chunks) written += c.chunk.length;
      void sleep(2).then(() => cb());
    },
  });
  async function* source(): AsyncGenerator<Buffer> {
    for (let n = 0; n < total; n += chunk) {
      // What the feed left queued (in flight + buffered) when it asked for the next piece.
      maxQueued = Math.max(maxQueued, sink.writableLength);
      yield Buffer.alloc(chunk, n & 0xff);
    }
  }
  const fed = await feedPacker(source(), sink);
  assert.equal(fed, total);
  assert.equal(written, total);
  assert.ok(maxQueued >= FEED_BATCH_BYTES, `the queue was used (${maxQueued} bytes)`);
  assert.ok(
    maxQueued <= FEED_QUEUE_BYTES + FEED_BATCH_BYTES + chunk,
    `at most ${FEED_QUEUE_BYTES + FEED_BATCH_BYTES + chunk} bytes queued, saw ${maxQueued}`,
  );
});
