import assert from "node:assert/strict";
import { mkdir, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openImage, writeImage } from "../../../src/oci/index.js";
import { readTar } from "../../../src/tar/index.js";
import { tempDir } from "../../helpers/tmp.js";
import { NET_RAW_CAP, xattrTree } from "./fixtures.js";

describe("dir: transport", () => {
  it("is one gzip layer of the tree, and reproducible under SOURCE_DATE_EPOCH", async (t) => {
    const dir = await tempDir(t);
    const root = join(dir, "root");
    await mkdir(join(root, "etc"), { recursive: true });
    await writeFile(join(root, "etc/hostname"), "kairos\n");
    const old = process.env.SOURCE_DATE_EPOCH;
    process.env.SOURCE_DATE_EPOCH = "1700000000";
    t.after(() => {
      if (old === undefined) delete process.env.SOURCE_DATE_EPOCH;
      else process.env.SOURCE_DATE_EPOCH = old;
    });
    const a = await openImage(`dir:${root}`);
    t.after(() => a.close());
    await utimes(join(root, "etc/hostname"), new Date(), new Date());
    const b = await openImage(`dir:${root}`);
    t.after(() => b.close());
    assert.equal(await a.digest(), await b.digest());
    const cfg = await a.config();
    assert.equal(cfg.created, "2023-11-14T22:13:20Z");
    const names: string[] = [];
    for await (const e of readTar(await (await a.layers())[0]!.uncompressed())) {
      names.push(e.path);
      assert.ok(e.mtime <= 1700000000);
    }
    assert.deepEqual(names, ["etc", "etc/hostname"]);
    delete process.env.SOURCE_DATE_EPOCH;
    const c = await openImage(`dir:${root}`);
    t.after(() => c.close());
    assert.notEqual(await c.digest(), await a.digest());
  });

  it("refuses a missing directory and being a destination", async (t) => {
    const dir = await tempDir(t);
    await assert.rejects(openImage(`dir:${dir}/nope`), /dir:.*nope: no such directory/);
    const img = await openImage(`dir:${dir}`);
    t.after(() => img.close());
    await assert.rejects(writeImage(img, `dir:${dir}/out`), /cannot be a destination.*|unpack/);
  });
});

describe("dir: transport keeps xattrs byte-exact", { skip: process.getuid?.() !== 0 && "needs root" }, () => {
  it("next to a dangling symlink, a device node and a fifo (getfattr exits 1 there)", async (t) => {
    const dir = await tempDir(t);
    const root = join(dir, "root");
    await xattrTree(root);
    // A relative path too: getfattr prints paths as given, the walk joins them.
    const cwd = process.cwd();
    process.chdir(dir);
    t.after(() => process.chdir(cwd));
    for (const ref of [`dir:${root}`, "dir:./root"]) {
      const img = await openImage(ref);
      t.after(() => img.close());
      const seen = new Map<string, { type: string; xattrs?: Map<string, Buffer> }>();
      for await (const e of readTar(await (await img.layers())[0]!.uncompressed())) {
        seen.set(e.path, { type: e.type, xattrs: e.xattrs });
      }
      const hex = (p: string) =>
        Object.fromEntries([...(seen.get(p)?.xattrs ?? [])].map(([k, v]) => [k, v.toString("hex")]));
      assert.deepEqual(hex("bin/ping"), {
        "security.capability": NET_RAW_CAP,
        "user.kairos": "68656c6c6f00776f726c64",
      });
      assert.deepEqual(hex("bin/dangling"), { "trusted.kairos": "01ff" });
      assert.equal(seen.get("bin/dangling")?.type, "symlink");
      assert.equal(seen.get("dev/null")?.type, "chardev");
      assert.equal(seen.get("run/fifo")?.type, "fifo");
    }
  });
});
