import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

const KAIROS = join(import.meta.dirname, "../../../bin/kairos");
const tmp = mkdtempSync(join(tmpdir(), "kairos-abcli-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

function kairos(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(KAIROS, args, { encoding: "utf8" }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

describe("kairos auroraboot: AuroraBoot's surface", () => {
  it("--help lists every key with its default", async () => {
    const r = await kairos(["auroraboot", "--help"]);
    assert.equal(r.code, 0);
    for (const k of [
      "disable_iso (default false)",
      "state_dir (default /tmp/auroraboot)",
      "iso.include_date",
      "allow-insecure-registries",
    ]) {
      assert.ok(r.stdout.includes(k), k);
    }
  });
  it("reads the positional config file; refusals come before any build and write nothing", async () => {
    const state = join(tmp, "state");
    const cfg = join(tmp, "ab.yaml");
    writeFileSync(
      cfg,
      `container_image: oci:${join(tmp, "nolayout")}\nstate_dir: ${state}\niso:\n  nmae: x\n`,
    );
    const typo = await kairos(["auroraboot", cfg]);
    assert.equal(typo.code, 1);
    assert.match(typo.stderr, /unknown AuroraBoot key 'iso\.nmae'/);
    const empty = join(tmp, "empty.yaml");
    writeFileSync(empty, "\n");
    const e = await kairos([
      "auroraboot",
      "--set",
      `container_image=oci:${join(tmp, "nolayout")}`,
      "--set",
      `state_dir=${state}`,
      "--cloud-config",
      empty,
    ]);
    assert.equal(e.code, 1);
    assert.match(e.stderr, /cloud config set but contents are empty/);
    const rel = await kairos(["auroraboot", "--set", "release_version=v3.4.2", "--set", "flavor=ubuntu"]);
    assert.equal(rel.code, 1);
    assert.match(rel.stderr, /release artifacts \(release_version, flavor\) are not downloaded/);
    assert.equal(existsSync(state), false);
  });
});
