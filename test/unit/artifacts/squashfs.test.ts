import assert from "node:assert/strict";
import { readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { squashfsFromTar } from "../../../src/artifacts/squashfs.js";
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
