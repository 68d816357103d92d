/**
 * A driven node for the e2e tests that upgrade an installed system (test/e2e/lifecycle-upgrade,
 * test/e2e/disk-boot): between boots (QEMU stopped) the test writes the next boot's driver
 * script to COS_OEM, boots with a network that reaches only the test's registry (one guestfwd
 * rule, restrict=on), and reads COS_STATE and the GRUB environment straight from the disk
 * through per-partition loop devices.
 */
import { mkdir, readFile, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ensureDefaultBase } from "../../src/base/index.js";
import { kairosInit } from "../../src/factory/init.js";
import { openImage, writeImage } from "../../src/oci/index.js";
import { run } from "../../src/sys/index.js";
import { boot, type Vm } from "../helpers/qemu.js";
import type { TestRegistry } from "../helpers/registry.js";
import { LOCK_WAIT_MS, virtioDrive } from "./lifecycle-fixture.js";

const REPO = new URL("../..", import.meta.url).pathname;

/** The boot's instructions: a shell script the `boot` stage starts as a transient unit. */
export const DRIVER_CONFIG = `#cloud-config
stages:
  boot:
    - name: "lifecycle-upgrade e2e driver"
      commands:
        - systemd-run --unit=kairos-e2e-driver --no-block /bin/sh /oem/e2e-driver.sh
`;

/** Common start of every driver: the marker helper, the network to the registry, the identity. */
export const DRIVER_HEAD = `#!/bin/sh
say() { echo "E2E $*" >/dev/ttyS0; }
for i in /sys/class/net/*; do
	n=\${i##*/}; [ "$n" = lo ] && continue
	ip link set "$n" up; ip addr add 10.0.2.15/24 dev "$n" 2>/dev/null
done
for _ in $(seq 1 120); do systemctl is-active -q kairos-boot-assessment.service && break; sleep 1; done
fp=$(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub 2>&1 | cut -d' ' -f2)
say "UP boot=$(kairos-agent state boot) version=$(kairos-agent state get kairos.version) fp=$fp failure=$(kairos-agent state get upgrade_failure 2>/dev/null || echo none) runfile=$(test -e /run/cos/upgrade_failure && echo yes || echo no) data=$(cat /usr/local/e2e-data 2>/dev/null || echo none) oem=$(ls /oem | tr '\\n' ,) env=$(grub-editenv /oem/grubenv list | tr '\\n' ' ')"
# upgrade SOURCE [FLAG...]: the flags (e.g. --recovery) go to kairos-agent upgrade as well.
upgrade() {
	src=$1; shift
	t0=$(date +%s.%N)
	kairos-agent upgrade --insecure "$@" --source "$src" >/tmp/upgrade.log 2>&1 &
	pid=$!
	tail -f /tmp/upgrade.log --pid=$pid | while read -r l; do say "LOG $l"; done
	wait $pid; rc=$?
	say "UPGRADE rc=$rc secs=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}') $(tail -n 2 /tmp/upgrade.log | tr '\\n' ' ')"
}
`;

export interface Disk {
  raw: string;
  /** Run `fn` with COS_OEM and COS_STATE of the (stopped) disk mounted. */
  withPartitions<T>(fn: (p: { oem: string; state: string }) => Promise<T>): Promise<T>;
}

export async function attach(raw: string, mnt: string): Promise<Disk> {
  return {
    raw,
    async withPartitions(fn) {
      // One loop device per partition, at its offset (partition nodes of a `losetup -P` device
      // need udev here); the filesystem label tells which is which.
      const devices: string[] = [];
      const mounted: string[] = [];
      try {
        const p: Record<string, string> = {};
        for (const line of (await run("partx", ["-g", "-o", "NR,START,SECTORS", raw])).stdout
          .trim()
          .split("\n")) {
          const [, start, sectors] = line.trim().split(/\s+/).map(Number);
          const dev = (
            await run("losetup", [
              "-f",
              "--show",
              "-o",
              String(start! * 512),
              "--sizelimit",
              String(sectors! * 512),
              raw,
            ])
          ).stdout.trim();
          devices.push(dev);
          const label = (
            await run("blkid", ["-o", "value", "-s", "LABEL", dev]).catch(() => ({ stdout: "" }))
          ).stdout.trim();
          if (label !== "COS_OEM" && label !== "COS_STATE") continue;
          const dir = join(mnt, label);
          await mkdir(dir, { recursive: true });
          await run("mount", [dev, dir]);
          mounted.push(dir);
          p[label] = dir;
        }
        if (!p.COS_OEM || !p.COS_STATE) throw new Error(`no COS_OEM/COS_STATE on ${raw}`);
        return await fn({ oem: p.COS_OEM, state: p.COS_STATE });
      } finally {
        for (const d of mounted.reverse()) await run("umount", [d]).catch(() => run("umount", ["-l", d]));
        for (const d of devices) await run("losetup", ["-d", d]).catch(() => {});
      }
    },
  };
}

/** Versions the two names resolve to, from slot.json. */
export async function slots(state: string): Promise<{ active: string; passive: string }> {
  const v = async (name: string) => {
    const target = await readlink(join(state, "cOS", name));
    const info = JSON.parse(await readFile(join(state, "cOS", target, "slot.json"), "utf8"));
    return String(info.version ?? info.source);
  };
  return { active: await v("active"), passive: await v("passive") };
}

export function field(line: string, key: string): string {
  return new RegExp(`\\b${key}=(\\S*)`).exec(line)?.[1] ?? "";
}

/** The default base + `kairos init --version VERSION`, pushed to `reg` as `kairos-e2e:TAG`. */
export async function pushKairosImage(
  layout: string,
  reg: TestRegistry,
  tag: string,
  version: string,
): Promise<void> {
  const base = await ensureDefaultBase({});
  await kairosInit(base.ref, `oci:${layout}:${tag}`, { osVersion: version });
  const image = await openImage(`oci:${layout}:${tag}`);
  try {
    await writeImage(image, `docker://${reg.host}/kairos-e2e:${tag}`, { insecure: true });
  } finally {
    await image.close();
  }
}

/** The registry as the guest reaches it: `oci:HOST:PORT/REPO:TAG`, as Kairos users write it. */
export const GUEST_REGISTRY = "10.0.2.100:5000";

/** Write this boot's driver to COS_OEM and boot the disk with the registry reachable. */
export async function bootDriven(opts: {
  disk: Disk;
  format?: "raw" | "qcow2";
  workDir: string;
  reg: TestRegistry;
  script: string;
  firmware?: "uefi" | "bios";
  /** Let the guest reboot inside this QEMU (panic=5, `systemctl reboot`) instead of exiting. */
  reboot?: boolean;
}): Promise<Vm> {
  await opts.disk.withPartitions(async ({ oem }) => {
    await writeFile(join(oem, "95_e2e.yaml"), DRIVER_CONFIG);
    await writeFile(join(oem, "e2e-driver.sh"), DRIVER_HEAD + opts.script, { mode: 0o755 });
  });
  await mkdir(opts.workDir, { recursive: true });
  const port = Number(opts.reg.host.split(":")[1]);
  return boot({
    firmware: opts.firmware ?? "uefi",
    workDir: opts.workDir,
    net: [
      "-netdev",
      `user,id=n0,restrict=on,guestfwd=tcp:${GUEST_REGISTRY}-cmd:${process.execPath} ${join(REPO, "test/helpers/tcp-relay.mjs")} ${port}`,
      "-device",
      "virtio-net-pci,netdev=n0",
    ],
    // The harness passes -no-reboot; a later -action reboot=reset overrides it (QEMU >= 6).
    extraArgs: [
      ...virtioDrive(opts.disk.raw, opts.format ?? "raw"),
      ...(opts.reboot ? ["-action", "reboot=reset"] : []),
    ],
    lockTimeoutMs: LOCK_WAIT_MS,
  });
}
