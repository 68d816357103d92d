import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmod, mkdir, symlink, writeFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { test } from "node:test";
import { evaluateFileTests, parseFileTests } from "../../../src/agent/stages/condition.js";
import { resolveInRoot } from "../../../src/config/index.js";
import { tempDir } from "../../helpers/tmp.js";

async function tree(dir: string): Promise<void> {
  await mkdir(join(dir, "d/sub"), { recursive: true });
  await writeFile(join(dir, "f"), "x");
  await writeFile(join(dir, "empty"), "");
  await writeFile(join(dir, "exe"), "#!/bin/sh\n");
  await chmod(join(dir, "exe"), 0o755);
  await writeFile(join(dir, "d/with space"), "y");
  await symlink("f", join(dir, "lf"));
  await symlink("nowhere", join(dir, "dangling"));
  await symlink("d", join(dir, "ld"));
  // Absolute: the host's / outside a chroot, the root's /f inside one.
  await symlink("/f", join(dir, "abs"));
}

test("file tests agree with sh on every operator, negation, quoting and && / || chains", async (t) => {
  const dir = await tempDir(t);
  await tree(dir);
  const names = ["f", "empty", "exe", "d", "d/sub", "lf", "dangling", "ld", "missing", "d/with space", ""];
  const conds: string[] = [];
  for (const op of ["-e", "-f", "-d", "-s", "-x", "-L", "-h"]) {
    for (const n of names) {
      const q = n.includes(" ") || n === "" ? `"${n}"` : n;
      conds.push(`[ ${op} ${q} ]`, `[ ! ${op} ${q} ]`, `test ${op} '${n}'`);
      if (n && !n.includes(" ")) conds.push(`[ ${op} ${join(dir, n)} ]`);
    }
  }
  conds.push(
    "[ -f f ] && [ -d d ]",
    "[ -f f ] && [ -d f ]",
    "[ -f nope ] || [ -d d ]",
    "[ -f nope ] && [ -d d ] || [ -s f ]",
    "[ -f f ] || [ -f nope ] && [ -e missing ]",
    "test -e f&&test -e missing",
    "[ -e f ]&&[ -e d ]",
    "  [ -x exe ]  ",
  );
  const resolve = (p: string) => (isAbsolute(p) ? p : join(dir, p));
  for (const c of conds) {
    const ours = evaluateFileTests(c, resolve);
    assert.notEqual(ours, undefined, `recognised: ${c}`);
    const sh = spawnSync("sh", ["-c", c], { cwd: dir }).status === 0;
    assert.equal(ours, sh, `${c}: ours ${ours}, sh ${sh}`);
  }
});

test("anything but plain file tests is left to the shell", () => {
  for (const c of [
    '[ "$(cat /etc/hostname)" = "localhost" ]',
    "[ -f $HOME/x ]",
    "[ -f `x` ]",
    "[ -f /a/* ]",
    "[ -f ~/x ]",
    "[ -f x ]; true",
    "[ -f x ] | cat",
    "[ -f x ] &",
    "[ -z x ]",
    "[ x = y ]",
    "[ -f ]",
    "[ -f x",
    "test -f x ]",
    "[ ! ! -f x ]",
    '[ "-f" x ]',
    '[ -f "a\\"b" ]',
    "[ -f a b ]",
    "[-f x ]",
    "[ -f x ]]",
    "[ -f x ] &&",
    "&& [ -f x ]",
    "! [ -f x ]",
    "grep -q x /proc/cmdline",
    "",
  ]) {
    assert.equal(parseFileTests(c), undefined, c);
  }
  assert.deepEqual(parseFileTests("[ ! -f '/run/cos/recovery_mode' ] && test -s x"), {
    tests: [
      { negate: true, op: "-f", path: "/run/cos/recovery_mode" },
      { negate: false, op: "-s", path: "x" },
    ],
    joins: ["&&"],
  });
});

test("in a chroot, paths resolve inside the root; a symlink that leaves it goes to the shell", async (t) => {
  const dir = await tempDir(t);
  await tree(dir);
  await symlink("../../../..", join(dir, "up"));
  const inRoot = (p: string, followLast: boolean) => resolveInRoot(dir, p, { followLast });
  assert.equal(evaluateFileTests("[ -f /abs ]", inRoot), true, "/abs -> /f inside the root");
  assert.equal(evaluateFileTests("[ -L /abs ]", inRoot), true);
  assert.equal(evaluateFileTests("[ -d /ld/sub ]", inRoot), true);
  assert.equal(evaluateFileTests("[ -e /dangling ]", inRoot), false);
  assert.equal(evaluateFileTests("[ -L /dangling ]", inRoot), true);
  assert.equal(evaluateFileTests("[ ! -e /missing/deeper ]", inRoot), true);
  assert.equal(evaluateFileTests("[ -e /up/etc ]", inRoot), undefined);
  assert.equal(evaluateFileTests("[ -e /d/../f ]", inRoot), undefined);
});
