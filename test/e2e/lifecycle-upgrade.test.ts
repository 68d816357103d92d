/**
 * Upgrade and boot assessment on an installed node (issue #10 items 4-5), QEMU TCG, UEFI: a
 * sparse copy of the installed-disk fixture (never installed again). Between boots (QEMU is
 * stopped) the test writes the next boot's instructions to COS_OEM (a cloud-config whose boot
 * stage starts /oem/e2e-driver.sh) and reads COS_STATE and the GRUB environment straight from the
 * disk through loop devices.
 *
 * The image: the default base with `kairos init --version v2.0.0-e2e`, pushed to a real local
 * registry that the guest reaches through one guestfwd rule (restrict=on: nothing else leaves
 * the guest), named the way Kairos users write it: `oci:HOST:PORT/REPO:TAG`.
 *
 * B1 (installed v0, active) upgrades to v2 → on disk active is v2, passive the old, trial set;
 * B2 boots v2 (active_boot, SSH host key unchanged) and the boot assessment confirms it.
 * Not here yet (written, not run to the end in time; see the branch history): the broken-init
 * fallback, power cuts in the guest, and reset.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readGrubenv } from "../../src/agent/index.js";
import { ensureDefaultBase } from "../../src/base/index.js";
import { kairosInit } from "../../src/factory/init.js";
import { openImage, writeImage } from "../../src/oci/index.js";
import { run } from "../../src/sys/index.js";
import { boot, type Vm } from "../helpers/qemu.js";
import { startRegistry, type TestRegistry } from "../helpers/registry.js";
import { installedDiskFixture, LOCK_WAIT_MS, poweredOff, virtioDrive } from "./lifecycle-fixture.js";

const REPO = new URL("../..", import.meta.url).pathname;
const MIN = 60_000;

/** The boot's instructions: a shell script the `boot` stage starts as a transient unit. */
const DRIVER_CONFIG = `#cloud-config
stages:
  boot:
    - name: "lifecycle-upgrade e2e driver"
      commands:
        - systemd-run --unit=kairos-e2e-driver --no-block /bin/sh /oem/e2e-driver.sh
`;

/** Common start of every driver: the marker helper, the network to the registry, the identity. */
const DRIVER_HEAD = `#!/bin/sh
say() { echo "E2E $*" >/dev/ttyS0; }
for i in /sys/class/net/*; do
	n=\${i##*/}; [ "$n" = lo ] && continue
	ip link set "$n" up; ip addr add 10.0.2.15/24 dev "$n" 2>/dev/null
done
for _ in $(seq 1 120); do systemctl is-active -q kairos-boot-assessment.service && break; sleep 1; done
fp=$(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub 2>&1 | cut -d' ' -f2)
say "UP boot=$(kairos-agent state boot) version=$(kairos-agent state get kairos.version) fp=$fp failure=$(kairos-agent state get upgrade_failure 2>/dev/null || echo none) runfile=$(test -e /run/cos/upgrade_failure && echo yes || echo no) data=$(cat /usr/local/e2e-data 2>/dev/null || echo none) oem=$(ls /oem | tr '\\n' ,) env=$(grub-editenv /oem/grubenv list | tr '\\n' ' ')"
upgrade() {
	t0=$(date +%s.%N)
	kairos-agent upgrade --insecure --source "$1" >/tmp/upgrade.log 2>&1 &
	pid=$!
	tail -f /tmp/upgrade.log --pid=$pid | while read -r l; do say "LOG $l"; done
	wait $pid; rc=$?
	say "UPGRADE rc=$rc secs=$(echo "$(date +%s.%N) $t0" | awk '{printf "%.1f", $1 - $2}') $(tail -n 2 /tmp/upgrade.log | tr '\\n' ' ')"
}
`;

interface Disk {
  raw: string;
  /** Run `fn` with COS_OEM and COS_STATE of the (stopped) disk mounted. */
  withPartitions<T>(fn: (p: { oem: string; state: string }) => Promise<T>): Promise<T>;
}

async function attach(raw: string, mnt: string): Promise<Disk> {
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
async function slots(state: string): Promise<{ active: string; passive: string }> {
  const v = async (name: string) => {
    const target = await readlink(join(state, "cOS", name));
    const info = JSON.parse(await readFile(join(state, "cOS", target, "slot.json"), "utf8"));
    return String(info.version ?? info.source);
  };
  return { active: await v("active"), passive: await v("passive") };
}

function field(line: string, key: string): string {
  return new RegExp(`\\b${key}=(\\S*)`).exec(line)?.[1] ?? "";
}

/** v2: the default base + `kairos init` with another version, pushed to `reg`. */
async function pushImages(layout: string, reg: TestRegistry): Promise<void> {
  const base = await ensureDefaultBase({});
  await kairosInit(base.ref, `oci:${layout}:v2`, { osVersion: "v2.0.0-e2e" });
  const v2 = await openImage(`oci:${layout}:v2`);
  try {
    await writeImage(v2, `docker://${reg.host}/kairos-e2e:v2`, { insecure: true });
  } finally {
    await v2.close();
  }
}

describe("upgrade from the registry and the confirmed trial boot on an installed node (QEMU TCG, UEFI)", {
  timeout: 150 * MIN,
}, () => {
  let work: string;
  let reg: TestRegistry;
  let disk: Disk;
  let good: string;
  const ups: string[] = [];
  const timings: string[] = [];

  before(async () => {
    work = (await run("mktemp", ["-d", "/var/tmp/kairos-lc-upgrade-XXXXXX"])).stdout.trim();
    reg = await startRegistry();
    // The images are built on the host while the installed-disk fixture waits for QEMU.
    const [fx] = await Promise.all([installedDiskFixture(), pushImages(join(work, "images"), reg)]);
    const raw = join(work, "disk.raw");
    await run("cp", ["--sparse=always", "--reflink=auto", fx.disk, raw]);
    disk = await attach(raw, join(work, "mnt"));
    good = "oci:10.0.2.100:5000/kairos-e2e:v2";
  });

  after(async () => {
    console.log(timings.join("\n"));
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Write this boot's driver to COS_OEM, boot, and hand the VM to `fn` (always stopped after). */
  async function bootWith<T>(name: string, script: string, fn: (vm: Vm) => Promise<T>): Promise<T> {
    await disk.withPartitions(async ({ oem }) => {
      await writeFile(join(oem, "95_e2e.yaml"), DRIVER_CONFIG);
      await writeFile(join(oem, "e2e-driver.sh"), DRIVER_HEAD + script, { mode: 0o755 });
    });
    const dir = join(work, name);
    await mkdir(dir, { recursive: true });
    const port = Number(reg.host.split(":")[1]);
    const vm = await boot({
      firmware: "uefi",
      workDir: dir,
      net: [
        "-netdev",
        `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:5000-cmd:${process.execPath} ${join(REPO, "test/helpers/tcp-relay.mjs")} ${port}`,
        "-device",
        "virtio-net-pci,netdev=n0",
      ],
      extraArgs: virtioDrive(disk.raw, "raw"),
      lockTimeoutMs: LOCK_WAIT_MS,
    });
    try {
      return await fn(vm);
    } finally {
      await vm.stop();
    }
  }

  async function up(vm: Vm, name: string): Promise<string> {
    const r = await vm.waitFor(/E2E UP [^\r\n]*/, 15 * MIN);
    timings.push(`${name}: up after ${r.seconds.toFixed(0)}s: ${r.match}`);
    ups.push(r.match);
    return r.match;
  }

  it("upgrades to v2 from the registry: new version active, old passive, SSH host key unchanged, trial confirmed", async () => {
    await bootWith("b1", `upgrade ${good}\nsystemctl poweroff\n`, async (vm) => {
      const u = await up(vm, "b1");
      assert.equal(field(u, "boot"), "active_boot");
      const done = await vm.waitFor(/E2E UPGRADE rc=\d+[^\r\n]*/, 40 * MIN);
      timings.push(`b1: ${done.match}`);
      assert.match(done.match, /rc=0 .*Upgrade completed/, vm.tail(30));
      await poweredOff(vm, 5 * MIN);
    });
    const b1 = ups[0]!;
    await disk.withPartitions(async ({ oem, state }) => {
      const s = await slots(state);
      assert.equal(s.active, "v2.0.0-e2e");
      assert.notEqual(s.passive, "v2.0.0-e2e");
      assert.equal((await readGrubenv(join(oem, "grubenv"))).get("boot_assessment"), "trial");
    });
    // B2: the new active boots (GRUB: trial -> tried) and confirms after multi-user.
    await bootWith("b2", "sleep 5\nsystemctl poweroff\n", async (vm) => {
      const u = await up(vm, "b2");
      assert.equal(field(u, "boot"), "active_boot");
      assert.equal(field(u, "version"), "v2.0.0-e2e");
      assert.ok(field(b1, "fp").startsWith("SHA256:"), b1);
      assert.equal(field(u, "fp"), field(b1, "fp"), "the SSH host key survives the upgrade");
      assert.doesNotMatch(u, /boot_assessment=/, "kairos-boot-assessment confirmed the trial");
      await poweredOff(vm, 5 * MIN);
    });
    await disk.withPartitions(async ({ oem, state }) => {
      assert.equal((await readGrubenv(join(oem, "grubenv"))).get("boot_assessment"), undefined);
      const s = await slots(state);
      assert.equal(s.active, "v2.0.0-e2e");
    });
  });
});
