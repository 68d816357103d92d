/**
 * Shared by the ISO e2e tests that build with the CLI: the cloud-config they embed, a test-only
 * marker unit (added through --overlay-rootfs, not in the product) and a cached
 * `kairos build iso IMAGE` run.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fixtureKey, pruneFixtures } from "../helpers/fixture.js";
import { testCacheDir } from "../helpers/qemu.js";

export const REPO = resolve(import.meta.dirname, "../..");
export const KAIROS = join(REPO, "bin/kairos");

export const KEY =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKairosTsTestKeyOnlyForTheE2eTestsXXXXXXXXX kairos-ts-e2e";

export const CLOUD_CONFIG = `#cloud-config
users:
  - name: kairos
    passwd: kairos
    ssh_authorized_keys:
      - ${KEY}
stages:
  boot:
    - name: e2e marker
      commands:
        - echo "KAIROS-STAGE-BOOT-RAN" > /dev/ttyS0
`;

/** Test-only unit (added through --overlay-rootfs, not in the product): reports after multi-user. */
export const MARKER_UNIT = `[Unit]
Description=kairos-ts e2e: report the live system on the serial console
After=multi-user.target cos-setup-boot.service

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "KAIROS-E2E-UP root=$(stat -f -c %%T /) user=$(id -u kairos 2>/dev/null || echo none) key=$(grep -c kairos-ts-e2e /home/kairos/.ssh/authorized_keys 2>/dev/null || echo 0) config=$(head -c 13 /run/initramfs/live/config.yaml) state=$(kairos-agent state 2>&1 | tr -s "\\\\n " " " | head -c 200)" >/dev/ttyS0'

[Install]
WantedBy=multi-user.target
`;

/**
 * Build (or reuse) an ISO of `image` with the CLI exactly as a user would, cached under
 * `name-<hash>` by `key` (what identifies the image) and everything else it is built from
 * (fixtureKey: the checkout's sources, framework, scripts, lockfile, tool versions).
 */
export async function cliIso(
  image: string | (() => Promise<string>),
  name: string,
  key: string,
): Promise<{ iso: string; log: string }> {
  const hash = fixtureKey({ inputs: { name, key }, files: ["test/e2e/iso-cli-fixture.ts"] });
  const dir = join(testCacheDir(), `${name}-${hash}`);
  const iso = join(dir, "kairos.iso");
  if (existsSync(iso)) return { iso, log: readFileSync(join(dir, "build.log"), "utf8") };
  // An expensive image (e.g. built in a chroot) is made only on a cache miss.
  const ref = typeof image === "string" ? image : await image();
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const wants = join(tmp, "overlay/etc/systemd/system/multi-user.target.wants");
  mkdirSync(wants, { recursive: true });
  writeFileSync(join(tmp, "overlay/etc/systemd/system/kairos-e2e-up.service"), MARKER_UNIT);
  symlinkSync("/etc/systemd/system/kairos-e2e-up.service", join(wants, "kairos-e2e-up.service"));
  writeFileSync(join(tmp, "config.yaml"), CLOUD_CONFIG);
  const b = spawnSync(
    KAIROS,
    [
      "build",
      "iso",
      ref,
      "--cloud-config",
      join(tmp, "config.yaml"),
      "--overlay-rootfs",
      join(tmp, "overlay"),
      "--grub-timeout",
      "1",
      "--name",
      "kairos",
      "-o",
      tmp,
    ],
    { encoding: "utf8" },
  );
  if (b.status !== 0) {
    rmSync(tmp, { recursive: true, force: true });
    assert.fail(`kairos build iso failed:\n${b.stderr}`);
  }
  writeFileSync(join(tmp, "build.log"), b.stderr + b.stdout);
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  // Older ISOs of this kind (other inputs) are ~250 MB each: keep only this one.
  pruneFixtures(dir, `${name}-`);
  return { iso, log: b.stderr + b.stdout };
}
