import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import {
  assessBoot,
  listBootEntries,
  parseBootEntries,
  readGrubenv,
  readNodeState,
  requireEntry,
  updateGrubenv,
} from "../../../src/agent/index.js";
import { tempDir } from "../../helpers/tmp.js";

const run = promisify(execFile);
const repo = join(import.meta.dirname, "..", "..", "..");

describe("boot entries", () => {
  it("lists the ids of the framework's grub.cfg and of a user grubmenu", async (t) => {
    const dir = await tempDir(t);
    const menu = join(dir, "grubmenu");
    await writeFile(menu, "menuentry 'My rescue' --id=rescue {\n  linux /x\n}\nmenuentry \"no id\" {\n}\n");
    const entries = await listBootEntries([
      join(repo, "framework/grub/grub.cfg"),
      menu,
      join(dir, "missing"),
    ]);
    const ids = entries.map((e) => e.id);
    for (const id of ["fallback", "recovery", "statereset", "rescue"])
      assert.ok(ids.includes(id), `${id} in ${ids}`);
    assert.ok(!entries.some((e) => e.title === "no id"));
    assert.equal(requireEntry(entries, "rescue").title, "My rescue");
    assert.throws(() => requireEntry(entries, "nope"), /no boot entry 'nope'.*|entries: /);
  });

  it("parses --id forms", () => {
    const e = parseBootEntries(
      'menuentry "A" --class os --id cos {\nmenuentry "B" --id "fallback" --unrestricted {\n',
      "f",
    );
    assert.deepEqual(
      e.map((x) => x.id),
      ["cos", "fallback"],
    );
  });
});

describe("boot assessment, agent side", () => {
  it("confirms a trial on an active boot", async (t) => {
    const dir = await tempDir(t);
    const env = join(dir, "grubenv");
    await updateGrubenv(env, { saved_entry: "cos", boot_assessment: "tried" });
    assert.equal(await assessBoot("active_boot", env, join(dir, "run")), "confirmed");
    assert.deepEqual(Object.fromEntries(await readGrubenv(env)), { saved_entry: "cos" });
    assert.equal(await assessBoot("active_boot", env, join(dir, "run")), "nothing");
  });

  it("records a fallback boot in /run/cos/upgrade_failure and clears fallback_assessment; state shows it", async (t) => {
    const root = await tempDir(t);
    const env = join(root, "grubenv");
    await updateGrubenv(env, { upgrade_failure: "1", fallback_assessment: "tried" });
    await mkdir(join(root, "run/cos"), { recursive: true });
    await writeFile(join(root, "run/cos/passive_mode"), "");
    assert.equal(await assessBoot("passive_boot", env, join(root, "run/cos")), "fallback");
    assert.match(await readFile(join(root, "run/cos/upgrade_failure"), "utf8"), /did not reach multi-user/);
    assert.deepEqual(Object.fromEntries(await readGrubenv(env)), { upgrade_failure: "1" });
    const s = await readNodeState(root);
    assert.equal(s.boot, "passive_boot");
    assert.equal(s.upgrade_failure, true);
  });

  it("does nothing on a passive boot the user chose", async (t) => {
    const dir = await tempDir(t);
    const env = join(dir, "grubenv");
    assert.equal(await assessBoot("passive_boot", env, join(dir, "run")), "nothing");
    assert.equal((await readNodeState(dir)).upgrade_failure, undefined);
  });
});

describe("kairos-agent help", () => {
  it("lists the lifecycle commands", async () => {
    const { stdout } = await run(join(repo, "bin/kairos-agent"), ["--help"]);
    for (const c of ["upgrade", "reset", "recovery", "bootentry", "boot-assessment", "version"]) {
      assert.match(stdout, new RegExp(`^\\s+${c}\\b`, "m"), c);
    }
  });

  it("upgrade refuses a --boot-entry it does not write, before touching anything", async () => {
    await assert.rejects(
      run(join(repo, "bin/kairos-agent"), ["upgrade", "--source", "oci:x/y:z", "--boot-entry", "statereset"]),
      (e: { stderr: string }) => /--boot-entry statereset: not an entry an upgrade writes/.test(e.stderr),
    );
  });
});
