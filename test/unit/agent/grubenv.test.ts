import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  formatGrubenv,
  GRUBENV_SIZE,
  parseGrubenv,
  readGrubenv,
  updateGrubenv,
} from "../../../src/agent/grubenv.js";
import { tempDir } from "../../helpers/tmp.js";

const editenv = (...args: string[]) => execFileSync("grub-editenv", args, { encoding: "utf8" });

const tricky: Record<string, string> = {
  next_entry: "statereset",
  saved_entry: "cos",
  empty: "",
  backslash: "a\\b\\\\c",
  newline: "line1\nline2",
  equals: "k=v=w",
  hash: "#not a comment",
  extra_cmdline: "console=ttyS0 foo=bar",
};

describe("grubenv", () => {
  it("reads what grub-editenv writes (escapes included)", async (t) => {
    const dir = await tempDir(t);
    const f = join(dir, "grubenv");
    editenv(f, "create");
    editenv(f, "set", ...Object.entries(tricky).map(([k, v]) => `${k}=${v}`));
    const vars = await readGrubenv(f);
    assert.deepEqual(Object.fromEntries(vars), tricky);
  });

  it("writes what grub-editenv reads, byte for byte as grub-editenv would", async (t) => {
    const dir = await tempDir(t);
    const ours = join(dir, "ours");
    await updateGrubenv(ours, tricky);
    const data = await readFile(ours);
    assert.equal(data.length, GRUBENV_SIZE);
    // grub-editenv list prints name=value with values unescaped.
    const expected = `${Object.entries(tricky)
      .map(([k, v]) => `${k}=${v}`)
      .join("\n")}\n`;
    assert.equal(editenv(ours, "list"), expected);
    const theirs = join(dir, "theirs");
    editenv(theirs, "create");
    editenv(theirs, "set", ...Object.entries(tricky).map(([k, v]) => `${k}=${v}`));
    assert.deepEqual(data, await readFile(theirs));
  });

  it("keeps other variables and unsets with undefined; grub-editenv agrees", async (t) => {
    const dir = await tempDir(t);
    const f = join(dir, "grubenv");
    editenv(f, "create");
    editenv(f, "set", "saved_entry=cos", "boot_assessment=trial");
    await updateGrubenv(f, { boot_assessment: undefined, next_entry: "recovery" });
    assert.equal(editenv(f, "list"), "saved_entry=cos\nnext_entry=recovery\n");
    editenv(f, "unset", "saved_entry");
    assert.deepEqual(Object.fromEntries(await readGrubenv(f)), { next_entry: "recovery" });
  });

  it("treats a missing file as empty", async (t) => {
    const dir = await tempDir(t);
    assert.equal((await readGrubenv(join(dir, "none"))).size, 0);
  });

  it("refuses a file that is not an environment block, and one of the wrong size", async (t) => {
    const dir = await tempDir(t);
    const f = join(dir, "grubenv");
    await writeFile(f, "saved_entry=cos\n");
    await assert.rejects(readGrubenv(f), /not a GRUB environment block/);
    await writeFile(f, "# GRUB Environment Block\nsaved_entry=cos\n");
    await assert.rejects(readGrubenv(f), /is 41 bytes, a GRUB environment block is 1024/);
    // A refused update changes nothing.
    await assert.rejects(updateGrubenv(f, { next_entry: "cos" }), /is 41 bytes/);
    assert.equal(await readFile(f, "utf8"), "# GRUB Environment Block\nsaved_entry=cos\n");
  });

  it("refuses variables that do not fit in 1024 bytes and bad names", () => {
    assert.throws(() => formatGrubenv(new Map([["big", "x".repeat(1000)]])), /would be \d+ bytes/);
    assert.throws(() => formatGrubenv(new Map([["a=b", "x"]])), /not a valid GRUB environment variable name/);
    assert.throws(() => formatGrubenv(new Map([["", "x"]])), /not a valid/);
  });

  it("round-trips through format and parse", () => {
    const vars = new Map(Object.entries(tricky));
    assert.deepEqual(parseGrubenv(formatGrubenv(vars)), vars);
  });
});
