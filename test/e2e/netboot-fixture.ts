/**
 * Netboot files of the default base (with `kairos init` applied on the fly, so the agent runs
 * the cloud-config stages) built by `kairos build netboot-files` as a user would, plus a
 * test-only marker unit through --overlay-rootfs. No cloud-config is embedded: the PXE tests
 * serve theirs as config_url. Cached under $KAIROS_CACHE/test/ by the base and every source
 * file that goes into the image (not the netboot server's own code).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join, relative } from "node:path";
import { ensureDefaultBase } from "../../src/base/index.js";
import { testCacheDir } from "../helpers/qemu.js";
import { KAIROS, REPO } from "./iso-cli-fixture.js";

export const PXE_CLOUD_CONFIG = `#cloud-config
users:
  - name: kairos
    passwd: kairos
stages:
  boot:
    - name: pxe e2e marker
      commands:
        - echo "KAIROS-STAGE-BOOT-RAN" > /dev/ttyS0
        - echo from-config-url > /run/kairos-pxe-marker
`;

/** Test-only unit: what the netbooted system sees, on the serial console. */
export const PXE_MARKER_UNIT = `[Unit]
Description=kairos-ts e2e: report the netbooted system on the serial console
After=multi-user.target cos-setup-boot.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "KAIROS-PXE-UP root=$(stat -f -c %%T /) mode=$(cat /run/kairos-boot-mode) user=$(id -u kairos 2>/dev/null || echo none) marker=$(cat /run/kairos-pxe-marker 2>/dev/null || echo none) addr=$(ip -4 -o addr show scope global | tr -s " " | cut -d" " -f4 | head -n1)" >/dev/ttyS0'

[Install]
WantedBy=multi-user.target
`;

/** Hash every file under `dir` except the paths in `skip` (relative to REPO). */
function hashTree(h: ReturnType<typeof createHash>, dir: string, skip: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (skip.includes(relative(REPO, p))) continue;
    if (e.isDirectory()) hashTree(h, p, skip);
    else if (e.isFile()) h.update(relative(REPO, p)).update(readFileSync(p));
  }
}

export interface NetbootFixture {
  /** Directory with kairos-kernel, kairos-initrd, kairos.squashfs. */
  dir: string;
  log: string;
}

export async function netbootFixture(): Promise<NetbootFixture> {
  const base = await ensureDefaultBase({});
  const h = createHash("sha256").update(base.key).update(PXE_MARKER_UNIT);
  const skip = ["src/netboot", "src/cli/commands/netboot.ts", "src/cli/commands/auroraboot.ts"];
  for (const d of ["src", "framework"]) hashTree(h, join(REPO, d), skip);
  const dir = join(testCacheDir(), `netboot-files-${h.digest("hex").slice(0, 16)}`);
  if (existsSync(join(dir, "kairos-kernel")))
    return { dir, log: readFileSync(join(dir, "build.log"), "utf8") };
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const wants = join(tmp, "overlay/etc/systemd/system/multi-user.target.wants");
  mkdirSync(wants, { recursive: true });
  writeFileSync(join(tmp, "overlay/etc/systemd/system/kairos-pxe-up.service"), PXE_MARKER_UNIT);
  symlinkSync("/etc/systemd/system/kairos-pxe-up.service", join(wants, "kairos-pxe-up.service"));
  const b = spawnSync(
    KAIROS,
    ["build", "netboot-files", base.ref, "--overlay-rootfs", join(tmp, "overlay"), "-o", tmp],
    { encoding: "utf8" },
  );
  if (b.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    assert.fail(`kairos build netboot-files failed:\n${b.stderr}`);
  }
  rmSync(join(tmp, "overlay"), { recursive: true, force: true });
  writeFileSync(join(tmp, "build.log"), b.stderr + b.stdout);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return { dir, log: b.stderr + b.stdout };
}
