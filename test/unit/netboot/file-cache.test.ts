import assert from "node:assert/strict";
import { mkdtemp, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FileCache, type FileStamp } from "../../../src/netboot/index.js";

async function stamp(path: string): Promise<FileStamp> {
  const st = await stat(path);
  return { path, size: st.size, mtimeMs: st.mtimeMs };
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
    const gone: FileStamp = { path: join(dir, "missing"), size: 3, mtimeMs: 1 };
    await assert.rejects(c.get(gone)!);
    assert.equal(c.bytes(), 0);
  });
});
