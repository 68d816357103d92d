/**
 * Reproducibility on the real path: the default base image (no /etc/kairos-release, so
 * `kairos init` is applied on the fly: framework layer, universal initramfs, squashfs) built
 * into an ISO twice by the CLI with the same SOURCE_DATE_EPOCH and everything else different:
 * work directory and output path, umask, time zone, and the wall clock (the second build starts
 * after the first has finished). The ISOs must be byte-identical; if they are not, the parts
 * that differ are named (kernel, initrd, squashfs, grub.cfg, config).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { ensureDefaultBase } from "../../src/base/index.js";
import { tempDir } from "../helpers/tmp.js";

const KAIROS = resolve(import.meta.dirname, "../../bin/kairos");
const EPOCH = "1700000000";
const PARTS = ["/boot/kernel", "/boot/initrd", "/rootfs.squashfs", "/boot/grub/grub.cfg", "/config.yaml"];

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** `kairos build iso REF` in `work` under `umask` and `tz`; returns the ISO's path and the build's seconds. */
function build(
  ref: string,
  work: string,
  umask: string,
  tz: string,
  cloudConfig: string,
): { iso: string; seconds: number } {
  mkdirSync(work, { recursive: true });
  const t0 = Date.now();
  const r = spawnSync(
    "sh",
    [
      "-c",
      `umask ${umask} && exec "$@"`,
      "sh",
      KAIROS,
      "build",
      "iso",
      ref,
      "-o",
      "out",
      "--name",
      "repro",
      "--cloud-config",
      cloudConfig,
    ],
    { cwd: work, encoding: "utf8", env: { ...process.env, SOURCE_DATE_EPOCH: EPOCH, TZ: tz } },
  );
  assert.equal(r.status, 0, `kairos build iso failed:\n${r.stderr}`);
  return { iso: join(work, "out", "repro.iso"), seconds: (Date.now() - t0) / 1000 };
}

function differingParts(a: string, b: string, dir: string): string[] {
  const out: string[] = [];
  for (const p of PARTS) {
    const sums = [a, b].map((iso, i) => {
      const dest = join(dir, `part-${i}-${p.replace(/\//g, "_")}`);
      spawnSync("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", p, dest], { stdio: "ignore" });
      try {
        return sha256(dest);
      } catch {
        return "missing";
      }
    });
    if (sums[0] !== sums[1]) out.push(`${p} (${sums[0]!.slice(0, 12)} vs ${sums[1]!.slice(0, 12)})`);
  }
  return out;
}

test("the default base's ISO, built twice with init on the fly, is byte-identical", {
  timeout: 15 * 60_000,
}, async (t) => {
  const base = await ensureDefaultBase({});
  const dir = await tempDir(t);
  const cc = join(dir, "config.yaml");
  spawnSync("sh", ["-c", `printf '#cloud-config\\nhostname: repro\\n' > ${cc}`]);
  const a = build(base.ref, join(dir, "first"), "022", "UTC", cc);
  const b = build(base.ref, join(dir, "second", "deeper work dir"), "077", "Pacific/Chatham", cc);
  console.log(`builds: ${a.seconds.toFixed(1)} s, ${b.seconds.toFixed(1)} s`);
  const [ha, hb] = [sha256(a.iso), sha256(b.iso)];
  if (ha !== hb) {
    assert.fail(
      `ISOs differ (${ha.slice(0, 12)} vs ${hb.slice(0, 12)}); parts that differ: ${differingParts(a.iso, b.iso, dir).join(", ") || "none (ISO metadata only)"}`,
    );
  }
  assert.equal(readFileSync(`${a.iso}.sha256`, "utf8").split(" ")[0], ha);
});
