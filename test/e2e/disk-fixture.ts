/**
 * Fixtures for the disk-image e2e test: `kairos build disk <default base>` (init on the fly)
 * with a cloud-config that creates a user and a test-only report unit (through
 * --overlay-rootfs, not in the product). Cached under $KAIROS_CACHE/test/disk-<format>-<boot>-<key>,
 * keyed by everything that goes in (src/, framework/, this file, the base image).
 *
 * The report unit prints one line after multi-user: `KAIROS-DISK-UP boot=… user=…
 * persistent_mib=… oem=…`.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureDefaultBase } from "../../src/base/index.js";
import { run } from "../../src/sys/index.js";
import { fixtureKey, publishFixture } from "../helpers/fixture.js";
import { testCacheDir } from "../helpers/qemu.js";
import { KAIROS, REPO } from "./iso-cli-fixture.js";

export const DISK_CLOUD_CONFIG = `#cloud-config
users:
  - name: kairos
    passwd: kairos
    groups: [admin]
`;

export const DISK_REPORT = `#!/bin/sh
b=$(kairos-agent state boot 2>&1)
mib=$(df -P -m /usr/local 2>/dev/null | awk 'NR==2 {print $2}')
echo "KAIROS-DISK-UP boot=$b user=$(id -u kairos 2>/dev/null || echo none) persistent_mib=$mib oem=$(ls /oem | tr '\\n' ,)" >/dev/ttyS0
`;

export const DISK_UNIT = `[Unit]
Description=kairos-ts disk e2e: report on the serial console
After=multi-user.target cos-setup-boot.service

[Service]
Type=oneshot
ExecStart=/usr/lib/kairos-e2e/disk-report

[Install]
WantedBy=multi-user.target
`;

function inputsKey(baseKey: string): string {
  return fixtureKey({
    inputs: { base: baseKey, config: DISK_CLOUD_CONFIG, report: DISK_REPORT, unit: DISK_UNIT },
    files: ["test/e2e/disk-fixture.ts"],
  });
}

export interface DiskFixture {
  file: string;
  buildSeconds: number;
  buildLog: string;
}

/** The disk image of `format` and `boot` (cached). */
export async function diskFixture(
  format: "raw" | "qcow2",
  boot: "efi" | "bios" | "hybrid",
): Promise<DiskFixture> {
  const base = await ensureDefaultBase({});
  const key = inputsKey(base.key);
  const dir = join(testCacheDir(), `disk-${format}-${boot}-${key}`);
  const meta = join(dir, "fixture.json");
  if (existsSync(meta)) return JSON.parse(readFileSync(meta, "utf8")) as DiskFixture;
  const tmp = `${dir}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const ov = join(tmp, "overlay");
  mkdirSync(join(ov, "etc/systemd/system/multi-user.target.wants"), { recursive: true });
  mkdirSync(join(ov, "usr/lib/kairos-e2e"), { recursive: true });
  writeFileSync(join(ov, "usr/lib/kairos-e2e/disk-report"), DISK_REPORT, { mode: 0o755 });
  writeFileSync(join(ov, "etc/systemd/system/kairos-disk-report.service"), DISK_UNIT);
  await run("ln", [
    "-s",
    "/etc/systemd/system/kairos-disk-report.service",
    join(ov, "etc/systemd/system/multi-user.target.wants/kairos-disk-report.service"),
  ]);
  writeFileSync(join(tmp, "config.yaml"), DISK_CLOUD_CONFIG);
  const t0 = Date.now();
  try {
    const r = await run(KAIROS, [
      "build",
      "disk",
      base.ref,
      "--format",
      format,
      "--boot",
      boot,
      "--cloud-config",
      join(tmp, "config.yaml"),
      "--overlay-rootfs",
      ov,
      "--name",
      "kairos",
      "-o",
      tmp,
    ]);
    writeFileSync(join(tmp, "build.log"), r.stderr + r.stdout);
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  rmSync(ov, { recursive: true, force: true });
  const final: DiskFixture = {
    file: join(dir, `kairos.${format}`),
    buildSeconds: (Date.now() - t0) / 1000,
    buildLog: join(dir, "build.log"),
  };
  return publishFixture(tmp, dir, final, `disk-${format}-${boot}-`);
}
