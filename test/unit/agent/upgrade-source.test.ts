import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { upgradeSourceRef } from "../../../src/agent/upgrade-source.js";

// The rule itself and its table: test/unit/oci/source-reference.test.ts. Here: the agent's
// wrapper looks at this machine's directories.
describe("upgradeSourceRef: --source read by the shared rule against the real filesystem", () => {
  it("oci:DIR is a local layout only when DIR is a directory here", () => {
    // Relative names (they do not look like paths), lowercase so the registry reading is valid.
    const tmp = mkdtempSync(join(tmpdir(), "upgrade-source-"));
    const cwd = process.cwd();
    try {
      mkdirSync(join(tmp, "layout"));
      writeFileSync(join(tmp, "file"), "");
      process.chdir(tmp);
      assert.equal(upgradeSourceRef("oci:layout:v2"), "oci:layout:v2");
      assert.equal(upgradeSourceRef("oci:file:v2"), "docker://file:v2");
      assert.equal(upgradeSourceRef("oci:missing:v2"), "docker://missing:v2");
    } finally {
      process.chdir(cwd);
      rmSync(tmp, { recursive: true, force: true });
    }
  });
  it("refuses an empty source with the flag to use", () => {
    assert.throws(() => upgradeSourceRef(" "), /no upgrade source given/);
    assert.throws(() => upgradeSourceRef("file:/x.img"), /raw filesystem image/);
  });
});
