/**
 * Fixtures for the node lifecycle e2e tests (docs/lifecycle.md):
 *
 * - `lifecycleIso()`: `kairos build iso <default base>` with a cloud-config that installs
 *   unattended (`install.auto: true`, `install.poweroff: true`, device auto) and a test-only
 *   report unit (through --overlay-rootfs, not in the product).
 * - `installedDiskFixture()`: that ISO booted under QEMU (UEFI) with an empty 32 GiB virtio
 *   disk (sparse) and a 4 GiB one; the installer picks the larger, installs and powers off.
 *   The disk is kept as a raw sparse file, keyed by everything that goes into it (src/,
 *   framework/, this file, the base image); tests start from a qcow2 overlay of it
 *   (`overlayOf`) and never install again.
 *
 * The refusals run only when a second disk (/dev/vdb) is attached, so a plain live boot of the
 * ISO (bench/install-boot.ts) is not slowed by them.
 *
 * The report unit prints one line after multi-user (`KAIROS-LC-UP …`: boot state, the
 * cloud-config user, the files the persistence test looks for, whether / is read-only) and,
 * on an active boot, then writes those files, syncs and prints `KAIROS-LC-WROTE`.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { ensureDefaultBase } from "../../src/base/index.js";
import { run } from "../../src/sys/index.js";
import { fixtureKey, lockedFixture, publishFixture } from "../helpers/fixture.js";
import { BootFailure, boot, testCacheDir, type Vm } from "../helpers/qemu.js";
import { KAIROS, REPO } from "./iso-cli-fixture.js";

export const LC_CLOUD_CONFIG = `#cloud-config
install:
  auto: true
  device: auto
  poweroff: true
  grub_options:
    extra_cmdline: "lc.grubopt=install"
  bind_mounts:
    - /var/lib/lc-bind
  ephemeral_mounts:
    - /usr/share/lc-eph
grub_options:
  timeout: "1"
users:
  - name: kairos
    passwd: kairos
    groups: [admin]
stages:
  initramfs:
    - name: "lifecycle e2e, a file from the initramfs stage"
      files:
        - path: /etc/lc-initramfs-stage
          content: "initramfs stage ran"
          permissions: 0644
  boot:
    - name: "lifecycle e2e, refusals before the installer runs"
      if: '[ -e /run/cos/live_mode ] && [ -b /dev/vdb ]'
      commands:
        - 'kairos-agent manual-install --device /dev/sr0 /run/initramfs/live/config.yaml >/tmp/r1 2>&1; echo "KAIROS-LC-REFUSE-LIVE rc=$? $(tr "\\n" " " </tmp/r1)" >/dev/ttyS0'
        - 'kairos-agent manual-install --device /dev/vdb /run/initramfs/live/config.yaml >/tmp/r2 2>&1; echo "KAIROS-LC-REFUSE-SMALL rc=$? $(tr "\\n" " " </tmp/r2)" >/dev/ttyS0'
  before-install:
    - name: "lifecycle e2e, the install reads its source cold, as the floor below does"
      commands:
        - sync; echo 3 >/proc/sys/vm/drop_caches
  after-install:
    - name: "lifecycle e2e, after-install ran"
      commands:
        - echo "KAIROS-LC-AFTER-INSTALL-STAGE" >/dev/ttyS0
    - name: "lifecycle e2e, the floor for docs/benchmarks.md: cp + sync of the three image files on this guest"
      commands:
        - 'L=/run/initramfs/live; P=/run/cos/persistent; sync; echo 3 >/proc/sys/vm/drop_caches; s=$(cut -d" " -f1 /proc/uptime); for i in 1 2 3; do cp $L/rootfs.squashfs $L/boot/kernel $L/boot/initrd $P/ && mkdir -p $P/lc-cp-$i && mv $P/rootfs.squashfs $P/kernel $P/initrd $P/lc-cp-$i/; done; sync; e=$(cut -d" " -f1 /proc/uptime); rm -rf $P/lc-cp-*; sync; echo "KAIROS-LC-CP-FLOOR start=$s end=$e" >/dev/ttyS0'
`;

/** The report script (in the image at /usr/lib/kairos-e2e/lc-report, outside every persistent path). */
export const LC_REPORT = `#!/bin/sh
b=$(kairos-agent state boot 2>&1)
rd() { cat "$1" 2>/dev/null || echo none; }
if touch /lc-ro-probe 2>/dev/null; then ro=rw; rm -f /lc-ro-probe; else ro=ro; fi
echo "KAIROS-LC-UP boot=$b user=$(id -u kairos 2>/dev/null || echo none) local=$(rd /usr/local/lc-local) persist=$(rd /root/lc-persist) etc=$(rd /etc/lc-ephemeral) bind=$(rd /var/lib/lc-bind/f) eph=$(rd /usr/share/lc-eph/f) initramfs=$(rd /etc/lc-initramfs-stage | tr ' ' _) root=$ro oem=$(ls /oem | tr '\\n' ,) state=$(kairos-agent state get state.mounted 2>&1)" >/dev/ttyS0
if [ "$b" = active_boot ]; then
	echo 1 >/usr/local/lc-local
	echo 1 >/root/lc-persist
	echo 1 >/etc/lc-ephemeral
	echo 1 >/var/lib/lc-bind/f
	echo 1 >/usr/share/lc-eph/f
	sync
	echo "KAIROS-LC-WROTE" >/dev/ttyS0
fi
`;

export const LC_UNIT = `[Unit]
Description=kairos-ts lifecycle e2e: report on the serial console
After=multi-user.target cos-setup-boot.service

[Service]
Type=oneshot
ExecStart=/usr/lib/kairos-e2e/lc-report

[Install]
WantedBy=multi-user.target
`;

function inputsKey(baseKey: string): string {
  return fixtureKey({
    inputs: { base: baseKey, config: LC_CLOUD_CONFIG, report: LC_REPORT, unit: LC_UNIT },
    files: ["test/e2e/lifecycle-fixture.ts"],
  });
}

let isoOnce: Promise<{ iso: string; key: string }> | undefined;
let diskOnce: Promise<InstalledDisk> | undefined;

/**
 * The auto-install ISO, cached under lifecycle-iso-<key>. The key is computed once per
 * process, so every test of a run uses the same fixture even if sources change meanwhile.
 */
export function lifecycleIso(): Promise<{ iso: string; key: string }> {
  isoOnce ??= buildLifecycleIso();
  return isoOnce;
}

async function buildLifecycleIso(): Promise<{ iso: string; key: string }> {
  const base = await ensureDefaultBase({});
  const key = inputsKey(base.key);
  const dir = join(testCacheDir(), `lifecycle-iso-${key}`);
  const iso = join(dir, "kairos.iso");
  return lockedFixture(
    dir,
    () => (existsSync(iso) ? { iso, key } : undefined),
    async () => {
      const tmp = `${dir}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      const ov = join(tmp, "overlay");
      mkdirSync(join(ov, "etc/systemd/system/multi-user.target.wants"), { recursive: true });
      mkdirSync(join(ov, "usr/lib/kairos-e2e"), { recursive: true });
      writeFileSync(join(ov, "usr/lib/kairos-e2e/lc-report"), LC_REPORT, { mode: 0o755 });
      writeFileSync(join(ov, "etc/systemd/system/kairos-lc-report.service"), LC_UNIT);
      await run("ln", [
        "-s",
        "/etc/systemd/system/kairos-lc-report.service",
        join(ov, "etc/systemd/system/multi-user.target.wants/kairos-lc-report.service"),
      ]);
      writeFileSync(join(tmp, "config.yaml"), LC_CLOUD_CONFIG);
      try {
        const r = await run(KAIROS, [
          "build",
          "iso",
          base.ref,
          "--cloud-config",
          join(tmp, "config.yaml"),
          "--overlay-rootfs",
          ov,
          "--grub-timeout",
          "1",
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
      await publishFixture(tmp, dir, { iso });
      pruneStale("lifecycle-iso-", dir);
      return { iso, key };
    },
  );
}

/** Wait until the guest powers off (the kernel's last line, or QEMU exiting cleanly); seconds since start. */
export async function poweredOff(vm: Vm, timeoutMs: number): Promise<number> {
  try {
    return (await vm.waitFor("reboot: Power down", timeoutMs)).seconds;
  } catch (err) {
    if (err instanceof BootFailure && /qemu exited \(status 0\)/.test(err.message)) return vm.elapsed();
    throw err;
  }
}

export interface InstalledDisk {
  /** Raw, sparse, 32 GiB: never write to it; boot a copy or an overlay (`overlayOf`). */
  disk: string;
  iso: string;
  /** Serial log of the install boot (the refusal markers are in it). */
  installLog: string;
  /** From QEMU start to power-off. */
  installSeconds: number;
}

/** How long a boot may wait for the machine-wide QEMU lock (seven helpers share two cores). */
export const LOCK_WAIT_MS = 60 * 60_000;

/** Size of the disk the installer writes to (upstream's default layout needs ~23.2 GiB). */
export const DISK_BYTES = 32 * 1024 ** 3;

/** A qemu `-drive` for a virtio disk. */
export function virtioDrive(path: string, format: "raw" | "qcow2", opts = ""): string[] {
  return ["-drive", `file=${path},format=${format},if=virtio${opts}`];
}

/** A writable qcow2 overlay of `base` (the base is never written). */
export async function overlayOf(base: string, out: string): Promise<string> {
  await run("qemu-img", ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", base, out]);
  return out;
}

/**
 * The installed disk (cached): auto-install from the ISO under UEFI onto a 32 GiB virtio disk,
 * power-off. Also exercises the installer's refusals (the live medium, a too-small disk) in
 * the same boot; their lines are in `installLog`.
 */
export function installedDiskFixture(): Promise<InstalledDisk> {
  diskOnce ??= buildInstalledDisk();
  diskOnce.catch(() => {
    diskOnce = undefined;
  });
  return diskOnce;
}

async function buildInstalledDisk(): Promise<InstalledDisk> {
  const { iso, key } = await lifecycleIso();
  const dir = join(testCacheDir(), `lifecycle-disk-${key}`);
  const meta = join(dir, "fixture.json");
  return lockedFixture(
    dir,
    () => (existsSync(meta) ? (JSON.parse(readFileSync(meta, "utf8")) as InstalledDisk) : undefined),
    async () => {
      const tmp = `${dir}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { recursive: true });
      const disk = join(tmp, "disk.raw");
      const small = join(tmp, "small.raw");
      await run("truncate", ["-s", String(DISK_BYTES), disk]);
      await run("truncate", ["-s", "4G", small]);
      const vm = await boot({
        firmware: "uefi",
        cdrom: iso,
        lockTimeoutMs: LOCK_WAIT_MS,
        workDir: tmp,
        extraArgs: [...virtioDrive(disk, "raw"), ...virtioDrive(small, "raw")],
      });
      let seconds = 0;
      try {
        await vm.waitFor("KAIROS-INITRAMFS: switching root (live)", 600_000);
        await vm.waitFor("Running after-install hook", 1_200_000);
        seconds = await poweredOff(vm, 600_000);
      } catch (err) {
        writeFileSync(join(tmp, "..", `lifecycle-install-failed-${process.pid}.log`), vm.log());
        await vm.stop();
        rmSync(tmp, { recursive: true, force: true });
        throw err;
      }
      const log = vm.log();
      await vm.stop();
      rmSync(small, { force: true });
      writeFileSync(join(tmp, "install.log"), log);
      const final: InstalledDisk = {
        disk: join(dir, "disk.raw"),
        iso,
        installLog: join(dir, "install.log"),
        installSeconds: seconds,
      };
      const published = await publishFixture(tmp, dir, final);
      pruneStale("lifecycle-disk-", dir);
      return published;
    },
  );
}

/**
 * Remove fixtures of the same kind built from other inputs, once they are a day old: several
 * worktrees (other keys) share this cache and may be booting theirs right now.
 */
function pruneStale(prefix: string, keep: string): void {
  const parent = dirname(keep);
  for (const name of readdirSync(parent)) {
    const p = join(parent, name);
    if (!name.startsWith(prefix) || p === keep || name.includes(".tmp-") || name.endsWith(".lock")) continue;
    if (Date.now() - statSync(p).mtimeMs > 24 * 3600_000) rmSync(p, { recursive: true, force: true });
  }
}
