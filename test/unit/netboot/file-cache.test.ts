import assert from "node:assert/strict";
import { mkdtemp, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FileCache, type FileStamp } from "../../../src/netboot/index.js";

async function stamp(path: string): Promise<FileStamp> {
  const st = await stat(path);
  return { path, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
}

describe("FileCache (small TFTP files in memory)", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "kairos-fcache-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it("reads a file once; concurrent and later requests share those bytes", async () => {
    const p = join(dir, "a.bin");
    await writeFile(p, "aaaa");
    const c = new FileCache();
    const s = await stamp(p);
    const [x, y] = await Promise.all([c.get(s), c.get(s)]);
    assert.equal(x, y, "one read for both");
    assert.equal(await c.get(s), x);
    assert.equal(x?.toString(), "aaaa");
    assert.equal(c.bytes(), 4);
  });

  it("a replaced file (other size or mtime) is read again", async () => {
    const p = join(dir, "b.bin");
    await writeFile(p, "old!");
    const c = new FileCache();
    assert.equal((await c.get(await stamp(p)))?.toString(), "old!");
    await writeFile(p, "new!");
    await utimes(p, new Date(), new Date(Date.now() + 5000));
    assert.equal((await c.get(await stamp(p)))?.toString(), "new!", "same size, newer mtime");
    await writeFile(p, "longer now");
    assert.equal((await c.get(await stamp(p)))?.toString(), "longer now", "other size");
    assert.equal(c.bytes(), 10, "the old entries are not counted any more");
  });

  it("a file rewritten with its old size and mtime put back (cp -p) is read again: its ctime moved", async () => {
    const p = join(dir, "p.bin");
    const T = 1_700_000_000; // whole seconds: set back exactly
    await writeFile(p, "one!");
    await utimes(p, T, T);
    const c = new FileCache();
    const first = await stamp(p);
    assert.equal((await c.get(first))?.toString(), "one!");
    // Past the kernel's coarse timestamp tick, so the rewrite gets another ctime.
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(p, "two!");
    await utimes(p, T, T);
    const second = await stamp(p);
    assert.equal(second.size, first.size);
    assert.equal(second.mtimeMs, first.mtimeMs, "mtime as before");
    assert.equal((await c.get(second))?.toString(), "two!");
  });

  it("a file replaced by rename is read again: another inode", async () => {
    const p = join(dir, "r.bin");
    await writeFile(p, "old!");
    await utimes(p, 1_700_000_000, 1_700_000_000);
    const c = new FileCache();
    assert.equal((await c.get(await stamp(p)))?.toString(), "old!");
    await writeFile(`${p}.new`, "new!");
    await utimes(`${p}.new`, 1_700_000_000, 1_700_000_000);
    await rename(`${p}.new`, p);
    assert.equal((await c.get(await stamp(p)))?.toString(), "new!");
  });

  it("files over the size limit are not kept; the total is bounded, oldest out first", async () => {
    const c = new FileCache({ maxFileBytes: 100, maxTotalBytes: 250 });
    const big = join(dir, "big.bin");
    await writeFile(big, Buffer.alloc(101));
    assert.equal(c.get(await stamp(big)), undefined);
    const names = ["c1", "c2", "c3"].map((n) => join(dir, n));
    for (const n of names) await writeFile(n, Buffer.alloc(100, n));
    const first = await c.get(await stamp(names[0]!));
    await c.get(await stamp(names[1]!));
    await c.get(await stamp(names[2]!));
    assert.equal(c.bytes(), 200, "c1 made room for c3");
    assert.notEqual(await c.get(await stamp(names[0]!)), first, "c1 was read again");
  });

  it("a file that cannot be read is not kept", async () => {
    const c = new FileCache();
    const gone: FileStamp = { path: join(dir, "missing"), size: 3, mtimeMs: 1, ctimeMs: 1, ino: 1 };
    await assert.rejects(c.get(gone)!);
    assert.equal(c.bytes(), 0);
  });
});
