import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { lstat, readdir, readFile, readlink, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { flattenEntries, flattenToDirectory, flattenToTar } from "../../../src/oci/flatten.js";
import { UnsafePathError } from "../../../src/tar/index.js";
import { imageOf } from "../../helpers/layers.js";
import { collect, tempDir } from "../../helpers/tmp.js";

/** Every path under dir with a short description of what it is. */
async function tree(dir: string, rel = ""): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(join(dir, rel))).sort()) {
    const p = rel ? `${rel}/${name}` : name;
    const abs = join(dir, p);
    const st = await lstat(abs);
    const mode = (st.mode & 0o7777).toString(8);
    if (st.isDirectory()) {
      out[p] = `dir ${mode}`;
      Object.assign(out, await tree(dir, p));
    } else if (st.isSymbolicLink()) out[p] = `link ${await readlink(abs)}`;
    else out[p] = `file ${mode} ${st.nlink > 1 ? `nlink=${st.nlink} ` : ""}${await readFile(abs, "utf8")}`;
  }
  return out;
}

/** Flatten both ways (directory sink; tar sink extracted by GNU tar) and check they agree. */
async function bothWays(t: TestContext, image: Awaited<ReturnType<typeof imageOf>>) {
  const dir = await tempDir(t);
  await flattenToDirectory(image, join(dir, "a"));
  const tarFile = join(dir, "flat.tar");
  await writeFile(tarFile, await collect(flattenToTar(image)));
  execFileSync("mkdir", [join(dir, "b")]);
  execFileSync("tar", ["-xpf", tarFile, "-C", join(dir, "b"), "--numeric-owner"]);
  const a = await tree(join(dir, "a"));
  const b = await tree(join(dir, "b"));
  assert.deepEqual(b, a, "tar sink and directory sink agree");
  return a;
}

test("whiteouts delete lower files and directories; newer content wins", async (t) => {
  const image = await imageOf(
    [
      { path: "etc" },
      { path: "etc/a", content: "old" },
      { path: "etc/gone", content: "x" },
      { path: "var" },
      { path: "var/cache" },
      { path: "var/cache/big", content: "x" },
    ],
    [
      { path: "etc" },
      { path: "etc/a", content: "new", mode: 0o600 },
      { path: "etc/.wh.gone", content: "" },
      { path: "var" },
      { path: "var/.wh.cache", content: "" },
    ],
  );
  const got = await bothWays(t, image);
  assert.deepEqual(got, { etc: "dir 755", "etc/a": "file 600 new", var: "dir 755" });
});

test("an opaque directory hides all older content but keeps its own layer's", async (t) => {
  const image = await imageOf(
    [
      { path: "opt" },
      { path: "opt/x", content: "1" },
      { path: "opt/sub" },
      { path: "opt/sub/y", content: "2" },
    ],
    [
      { path: "opt" },
      { path: "opt/.wh..wh..opq", content: "" },
      { path: "opt/sub" },
      { path: "opt/sub/z", content: "3" },
    ],
  );
  const got = await bothWays(t, image);
  assert.deepEqual(got, { opt: "dir 755", "opt/sub": "dir 755", "opt/sub/z": "file 644 3" });
});

test("a whiteout and the new file in the same layer: the new file stays", async (t) => {
  const image = await imageOf(
    [{ path: "f", content: "old" }],
    [
      { path: "f", content: "new" },
      { path: ".wh.g", content: "" },
    ],
  );
  assert.deepEqual(await bothWays(t, image), { f: "file 644 new" });
});

test("hardlinks: same layer, to an older layer, and to a target a newer layer replaced", async (t) => {
  const image = await imageOf(
    [
      { path: "bin" },
      { path: "bin/a", content: "A1" },
      { path: "bin/b", type: "hardlink", linkname: "bin/a" },
    ],
    [{ path: "bin" }, { path: "bin/c", type: "hardlink", linkname: "bin/a" }],
    [{ path: "bin" }, { path: "bin/a", content: "A2" }],
  );
  const got = await bothWays(t, image);
  assert.deepEqual(got, {
    bin: "dir 755",
    "bin/a": "file 644 A2",
    "bin/b": "file 644 nlink=2 A1",
    "bin/c": "file 644 nlink=2 A1",
  });
});

test("a hardlink whose same-layer target a newer layer replaced rereads only that layer", async (t) => {
  const image = await imageOf(
    [
      { path: "a", content: "old" },
      { path: "b", type: "hardlink", linkname: "a" },
    ],
    [{ path: "a", content: "new" }],
  );
  const got = await bothWays(t, image);
  assert.deepEqual(got, { a: "file 644 new", b: "file 644 old" });
  // bothWays flattens twice; each flattenToTar reads layer 0 twice (orphan target), the directory sink once.
  assert.deepEqual(image.reads, [3, 2]);
});

test("a file replacing a directory hides everything that was under it", async (t) => {
  const image = await imageOf(
    [{ path: "d" }, { path: "d/x", content: "1" }],
    [{ path: "d", content: "now a file" }],
  );
  assert.deepEqual(await bothWays(t, image), { d: "file 644 now a file" });
});

test("symlinks and binary xattrs come through the tar sink byte-exact", async () => {
  const cap = Buffer.from([1, 0, 0, 2, 0x20, 0, 0, 0, 0xff]);
  const image = await imageOf([
    { path: "usr" },
    { path: "usr/ping", content: "x", mode: 0o4755, xattrs: new Map([["security.capability", cap]]) },
    { path: "lib", type: "symlink", linkname: "usr/lib" },
  ]);
  const out = [];
  for await (const e of flattenEntries(image)) out.push(e.header);
  const ping = out.find((h) => h.path === "usr/ping")!;
  assert.equal(ping.mode, 0o4755);
  assert.ok(ping.xattrs?.get("security.capability")?.equals(cap));
  assert.equal(out.find((h) => h.path === "lib")?.linkname, "usr/lib");
});

test("refuses an entry written through a symlink planted by an older layer (both sinks)", async (t) => {
  const dir = await tempDir(t);
  const image = await imageOf(
    [{ path: "evil", type: "symlink", linkname: "/etc" }],
    [{ path: "evil/passwd", content: "pwned" }],
  );
  await assert.rejects(flattenToDirectory(image, join(dir, "out")), UnsafePathError);
  await assert.rejects(collect(flattenToTar(image)), /a newer layer writes files under it/);
  const image2 = await imageOf([
    { path: "up", type: "symlink", linkname: "../../../../tmp" },
    { path: "up/x", content: "pwned" },
  ]);
  await assert.rejects(flattenToDirectory(image2, join(dir, "out2")), /through the symlink up/);
  await assert.rejects(collect(flattenToTar(image2)), /symlink or file of the same layer/);
});

test("refuses a hardlink to a file outside the image", async (t) => {
  const dir = await tempDir(t);
  const image = await imageOf([{ path: "x", type: "hardlink", linkname: "etc/shadow" }]);
  await assert.rejects(flattenToDirectory(image, join(dir, "o")), /does not exist/);
  await assert.rejects(collect(flattenToTar(image)), /which no layer contains/);
});

test("flattenToDirectory into a target that already holds files replaces them (only an empty target skips the checks)", async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, "old"), "left by someone else\n");
  await symlink("/etc/passwd", join(dir, "link"));
  const img = await imageOf([
    { path: "old", content: "new\n" },
    { path: "link", type: "symlink", linkname: "old" },
    { path: "d" },
    { path: "d/f", content: "f\n" },
  ]);
  await flattenToDirectory(img, dir);
  assert.equal(await readFile(join(dir, "old"), "utf8"), "new\n");
  assert.equal(await readlink(join(dir, "link")), "old");
  assert.equal(await readFile(join(dir, "d/f"), "utf8"), "f\n");
});

test("flattenToDirectory into an empty target: a later layer replaces what an earlier one wrote", async (t) => {
  const dir = await tempDir(t);
  const img = await imageOf(
    [
      { path: "a", content: "1\n" },
      { path: "l", type: "symlink", linkname: "a" },
      { path: "h", type: "hardlink", linkname: "a" },
    ],
    [
      { path: "a", content: "2\n" },
      { path: "l", type: "symlink", linkname: "b" },
      { path: ".wh.h", content: "" },
    ],
  );
  await flattenToDirectory(img, dir);
  assert.equal(await readFile(join(dir, "a"), "utf8"), "2\n");
  assert.equal(await readlink(join(dir, "l")), "b");
  assert.deepEqual((await readdir(dir)).sort(), ["a", "l"]);
});

test("a hardlink whose target a newer layer deleted keeps the target's old content", async (t) => {
  const image = await imageOf(
    [
      { path: "lib" },
      { path: "lib/real", content: "R" },
      { path: "lib/alias", type: "hardlink", linkname: "lib/real" },
    ],
    [{ path: "lib" }, { path: "lib/.wh.real", content: "" }],
  );
  assert.deepEqual(await bothWays(t, image), { lib: "dir 755", "lib/alias": "file 644 R" });
});

test("the order of the flattened entries: newest layer first, each in its own order, links after targets", async () => {
  const image = await imageOf(
    [
      { path: "a" },
      { path: "a/old", content: "1" },
      { path: "a/keep", content: "2" },
      { path: "b" },
      { path: "b/x", content: "3" },
      { path: "c", content: "4" },
      { path: "c2", type: "hardlink", linkname: "c" },
    ],
    [
      { path: "b" },
      { path: "b/.wh..wh..opq", content: "" },
      { path: "b/y", content: "5" },
      { path: "a/.wh.old", content: "" },
      { path: "d/e/f", content: "6" },
      { path: "l", type: "hardlink", linkname: "a/keep" },
    ],
  );
  const got: string[] = [];
  for await (const e of flattenEntries(image))
    got.push(`${e.header.path}${e.header.linkname ? ` -> ${e.header.linkname}` : ""}`);
  assert.deepEqual(got, ["b", "b/y", "d/e/f", "a", "a/keep", "l -> a/keep", "c", "c2 -> c"]);
});

test("whiteouts and opaque directories over thousands of paths (the path set grows several times)", async (t) => {
  const lower: { path: string; content?: string }[] = [];
  for (let d = 0; d < 40; d++) {
    lower.push({ path: `srv/d${d}` });
    for (let f = 0; f < 100; f++)
      lower.push({ path: `srv/d${d}/file-with-a-long-name-${f}.txt`, content: `${d}.${f}` });
  }
  const upper: { path: string; content?: string }[] = [{ path: "srv/d7/.wh..wh..opq", content: "" }];
  for (let d = 0; d < 40; d++)
    upper.push({ path: `srv/d${d}/.wh.file-with-a-long-name-${d}.txt`, content: "" });
  upper.push({ path: "srv/.wh.d9", content: "" });
  const image = await imageOf(lower, upper);
  const want = new Set<string>();
  for (let d = 0; d < 40; d++) {
    if (d === 9) continue;
    want.add(`srv/d${d}`);
    if (d === 7) continue;
    for (let f = 0; f < 100; f++) if (f !== d) want.add(`srv/d${d}/file-with-a-long-name-${f}.txt`);
  }
  const got = new Set<string>();
  for await (const e of flattenEntries(image)) {
    assert.ok(!got.has(e.header.path), `${e.header.path} comes once`);
    got.add(e.header.path);
  }
  assert.deepEqual([...got].sort(), [...want].sort());
  const dir = await tempDir(t);
  await flattenToDirectory(image, join(dir, "ref"));
  assert.equal((await readdir(join(dir, "ref/srv"))).length, 39);
});
