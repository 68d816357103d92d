/**
 * Upgrade, boot assessment, power cuts and reset on an installed node (issue #10 items 4-6),
 * QEMU TCG, UEFI, one disk through a chain of boots that share assertions. The disk is a sparse
 * copy of the installed-disk fixture (never installed again). Between boots (QEMU is stopped)
 * the test writes the next boot's instructions to COS_OEM and reads COS_STATE and the GRUB
 * environment straight from the disk through a loop device.
 *
 * The images: the default base with `kairos init --version v2.0.0-e2e` (good) and the same with
 * an /sbin/init that exits at once (broken), pushed to a real local registry that the guest
 * reaches through one guestfwd rule (restrict=on: nothing else leaves the guest), and named
 * the way Kairos users write it: `oci:HOST:PORT/REPO:TAG`.
 *
 * Chain (8 boots): B1 v0 active → upgrade to v2 → B2 v2 active (trial confirmed, SSH host
 * key the same) → upgrade to broken → B3 broken init panics → B4 back on passive by itself
 * (passive_boot, upgrade_failure) → upgrade, power cut mid-stream → B5 works → upgrade, power
 * cut right after the new slot is committed → B6 works → reset (next_entry=statereset) → B7
 * the recovery system resets → B8 active, persistent data gone, OEM kept.
 */
import assert from "node:assert/strict";
import { mkdir, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readGrubenv } from "../../src/agent/index.js";
import { ensureDefaultBase } from "../../src/base/index.js";
import { kairosInit } from "../../src/factory/init.js";
import { appendLayer, openImage, writeImage } from "../../src/oci/index.js";
import { run } from "../../src/sys/index.js";
import { writeTar } from "../../src/tar/index.js";
import { boot, type Vm } from "../helpers/qemu.js";
import { startRegistry, type TestRegistry } from "../helpers/registry.js";
import { installedDiskFixture, poweredOff, virtioDrive } from "./lifecycle-fixture.js";

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

/** v2 (the default base + `kairos init` with another version) and a broken copy, pushed to `reg`. */
async function pushImages(layout: string, reg: TestRegistry): Promise<void> {
  const base = await ensureDefaultBase({});
  await kairosInit(base.ref, `oci:${layout}:v2`, { osVersion: "v2.0.0-e2e" });
  const v2 = await openImage(`oci:${layout}:v2`);
  try {
    await writeImage(v2, `docker://${reg.host}/kairos-e2e:v2`, { insecure: true });
    // The same image, but its init exits at once: the kernel panics, panic=5 reboots.
    const initScript = Buffer.from("#!/bin/sh\necho KAIROS-E2E-BROKEN-INIT >/dev/console\nexit 1\n");
    const bad = await appendLayer(
      v2,
      writeTar([
        {
          header: {
            path: "usr/sbin/init",
            type: "file",
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: initScript.length,
            mtime: 0,
          },
          body: initScript,
        },
      ]),
      { history: { created_by: "e2e: an init that cannot start" } },
    );
    await writeImage(bad, `docker://${reg.host}/kairos-e2e:broken`, { insecure: true });
    await bad.close();
  } finally {
    await v2.close();
  }
}

describe("upgrade, boot assessment, power cuts and reset on an installed node (QEMU TCG, UEFI)", {
  timeout: 150 * MIN,
}, () => {
  let work: string;
  let reg: TestRegistry;
  let disk: Disk;
  let good: string;
  let broken: string;
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
    broken = "oci:10.0.2.100:5000/kairos-e2e:broken";
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
      lockTimeoutMs: 40 * MIN,
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
    // B2: the new active boots (GRUB: trial -> tried), confirms; then the upgrade to the broken image.
    await bootWith(
      "b2",
      `echo kept >/usr/local/e2e-data; sync\nupgrade ${broken}\nsystemctl poweroff\n`,
      async (vm) => {
        const u = await up(vm, "b2");
        assert.equal(field(u, "boot"), "active_boot");
        assert.equal(field(u, "version"), "v2.0.0-e2e");
        assert.ok(field(b1, "fp").startsWith("SHA256:"), b1);
        assert.equal(field(u, "fp"), field(b1, "fp"), "the SSH host key survives the upgrade");
        assert.doesNotMatch(u, /boot_assessment=/, "kairos-boot-assessment confirmed the trial");
        const done = await vm.waitFor(/E2E UPGRADE rc=\d+[^\r\n]*/, 40 * MIN);
        timings.push(`b2: ${done.match}`);
        assert.match(done.match, /rc=0 .*Upgrade completed/, vm.tail(30));
        await poweredOff(vm, 5 * MIN);
      },
    );
  });

  it("an image whose init cannot start: the node comes back on passive by itself, upgrade_failure visible", async () => {
    await bootWith("b3", "say SHOULD-NOT-RUN\n", async (vm) => {
      // No fail markers: the panic is what this boot is about; -no-reboot turns panic=5's reboot into an exit.
      const p = await vm.waitFor(/KAIROS-E2E-BROKEN-INIT|Attempted to kill init/, 15 * MIN, []);
      timings.push(`b3: broken init at ${p.seconds.toFixed(0)}s`);
      await poweredOff(vm, 3 * MIN).catch(() => 0);
      assert.doesNotMatch(vm.log(), /E2E UP/);
    });
    // B4: GRUB finds the trial `tried`, boots fallback; then the first power cut, mid-stream.
    await bootWith("b4", `upgrade ${good}\n`, async (vm) => {
      const u = await up(vm, "b4");
      assert.equal(field(u, "boot"), "passive_boot");
      assert.equal(field(u, "version"), "v2.0.0-e2e");
      assert.equal(field(u, "failure"), "true");
      assert.equal(field(u, "runfile"), "yes");
      await vm.waitFor("upgrade: checked", 20 * MIN);
      await new Promise((r) => setTimeout(r, 20_000)); // the image is streaming into the new slot
      assert.doesNotMatch(vm.log(), /upgrade: written/, "cut while the image was being written");
    });
  });

  it("power cuts during an upgrade (mid-stream, right after the new slot is committed): the next boot works", async () => {
    await bootWith("b5", `upgrade ${good}\n`, async (vm) => {
      const u = await up(vm, "b5");
      assert.equal(field(u, "boot"), "passive_boot", "still the working passive after the first cut");
      assert.equal(field(u, "version"), "v2.0.0-e2e");
      await vm.waitFor("upgrade: committed", 40 * MIN);
    });
    await disk.withPartitions(async ({ state }) => {
      timings.push(`after the power cuts: ${JSON.stringify(await slots(state))}`);
    });
    await bootWith("b6", "kairos-agent reset --reboot >/dev/ttyS0 2>&1\n", async (vm) => {
      const u = await up(vm, "b6");
      assert.match(field(u, "boot"), /^(active|passive)_boot$/);
      assert.equal(field(u, "version"), "v2.0.0-e2e");
      await poweredOff(vm, 5 * MIN);
    });
  });

  it("reset: the statereset boot redeploys from recovery, persistent data gone, OEM kept", async () => {
    await bootWith("b7", "say RECOVERY-DRIVER\n", async (vm) => {
      // The statereset entry: the recovery system runs the reset and reboots (QEMU exits).
      const r = await vm.waitFor(/Reset completed/, 30 * MIN);
      timings.push(`b7: reset done at ${r.seconds.toFixed(0)}s`);
      await poweredOff(vm, 5 * MIN);
    });
    await bootWith("b8", "sleep 5\nsystemctl poweroff\n", async (vm) => {
      const u = await up(vm, "b8");
      assert.equal(field(u, "boot"), "active_boot");
      assert.equal(field(u, "data"), "none", "COS_PERSISTENT was wiped");
      assert.match(field(u, "oem"), /90_custom\.yaml/, "COS_OEM kept");
      assert.notEqual(field(u, "version"), "v2.0.0-e2e", "the system came from recovery");
      await poweredOff(vm, 5 * MIN);
    });
  });
});
