import assert from "node:assert/strict";
import { readFile, readlink, stat } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { CpioWriter, cpioPath } from "../../../src/factory/index.js";
import { run } from "../../../src/sys/index.js";
import { tempDir } from "../../helpers/tmp.js";

describe("cpio newc writer", () => {
  it("writes an archive GNU cpio extracts identically", async (t) => {
    const w = new CpioWriter({ mtime: 1700000000 });
    w.directory("bin");
    w.file("bin/hello", "#!/bin/sh\necho hi\n", { mode: 0o755 });
    w.file("odd", Buffer.from([1, 2, 3]));
    w.symlink("bin/sh", "/bin/busybox");
    w.directory("dev");
    w.device("dev/console", "char", 5, 1);
    const archive = w.finish();
    assert.equal(archive.length % 4, 0);
    assert.equal(archive.subarray(0, 6).toString(), "070701");
    const dir = await tempDir(t);
    await run("sh", ["-c", `cd ${dir} && cpio -id --quiet --no-absolute-filenames`], { input: archive });
    assert.equal(await readFile(join(dir, "bin/hello"), "utf8"), "#!/bin/sh\necho hi\n");
    assert.equal((await stat(join(dir, "bin/hello"))).mode & 0o777, 0o755);
    assert.deepEqual([...(await readFile(join(dir, "odd")))], [1, 2, 3]);
    assert.equal(await readlink(join(dir, "bin/sh")), "/bin/busybox");
    const { stdout } = await run("cpio", ["-itv", "--quiet"], { input: archive });
    assert.match(stdout, /crw-------\s+1 root\s+root\s+5,\s+1 .* dev\/console/);
    assert.match(stdout, /Nov 14\s+2023 bin\/hello/);
  });

  it("is deterministic", () => {
    const mk = () => {
      const w = new CpioWriter({ mtime: 5 });
      w.file("a", "x");
      return w.finish();
    };
    assert.deepEqual(mk(), mk());
  });

  it("refuses '..', empty paths, NUL and duplicates", () => {
    assert.throws(() => cpioPath("../etc/passwd"), /refusing path with '\.\.'/);
    assert.throws(() => cpioPath("a/../../b"), /refusing path with '\.\.'/);
    assert.throws(() => cpioPath("/"), /empty path/);
    assert.throws(() => cpioPath("a\0b"), /NUL in path/);
    assert.equal(cpioPath("/init"), "init");
    const w = new CpioWriter();
    w.file("x", "1");
    assert.throws(() => w.file("./x", "2"), /duplicate entry x/);
    assert.throws(() => w.symlink("y", ""), /bad symlink target/);
  });
});
