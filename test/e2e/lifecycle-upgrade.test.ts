/**
 * Upgrade, boot assessment, power cuts and reset on an installed node (issue #10 items 4-6),
 * QEMU TCG, UEFI: one sparse copy of the installed-disk fixture (never installed again) through
 * a chain of boots, where the check of one scenario is the start of the next. Between QEMU runs
 * the test writes the next run's driver to COS_OEM (a cloud-config whose boot stage starts
 * /oem/e2e-driver.sh; the driver branches on the boot mode, so one driver serves the guest's
 * own reboots) and reads COS_STATE and the GRUB environment straight from the disk.
 *
 * The images, pushed to a real local registry that the guest reaches through one guestfwd rule
 * (restrict=on) and named the way Kairos users write it (`oci:HOST:PORT/REPO:TAG`): v2 (the
 * default base with `kairos init --version v2.0.0-e2e`) and v3-broken (`--version v3-broken`
 * plus a layer whose /sbin/init prints a marker and exits: the kernel panics, panic=5 reboots).
 *
 * Four QEMU runs, eight boots:
 *  R1  B1 v0 active: upgrade to v2, power off → on disk active v2, passive v0, trial set.
 *  R2  B2 v2 active (trial confirmed, SSH host key the same), writes /usr/local data, upgrades
 *      to v3-broken, reboots (in the same QEMU: no -no-reboot) → B3 GRUB tries v3 (trial →
 *      tried), its init dies, panic, reboot → B4 GRUB finds `tried`: passive by itself
 *      (passive_boot, /run/cos/upgrade_failure), then upgrades to v2 and the power is cut
 *      (SIGKILL of QEMU) while the image streams.
 *  R3  B5 passive again (the fallback's confirm cleared fallback_assessment: no loop, no
 *      recovery), upgrade to v2, power cut right after the image is written (before or during
 *      the commit and rotation).
 *  R4  B6 a working system (active or passive, multi-user, the driver runs),
 *      `kairos-agent upgrade --recovery` to v4 (`--version v4.0.0-recovery`: a version no slot
 *      on COS_STATE has), then `kairos-agent reset --reboot` (sets next_entry=statereset) → B7
 *      the new recovery system boots and resets (kairos-reset.service) and reboots → B8 active,
 *      the /usr/local data gone, COS_OEM kept, active and passive v4: from recovery.
 * Each boot's time is printed at the end. The long power-cut matrix is bench/lifecycle-powercut.ts.
 */
import assert from "node:assert/strict";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readGrubenv } from "../../src/agent/index.js";
import { ensureDefaultBase } from "../../src/base/index.js";
import { kairosInit } from "../../src/factory/init.js";
import { appendLayer, openImage, writeImage } from "../../src/oci/index.js";
import { run } from "../../src/sys/index.js";
import { writeTar } from "../../src/tar/index.js";
import type { Vm } from "../helpers/qemu.js";
import { startRegistry, type TestRegistry } from "../helpers/registry.js";
import { installedDiskFixture, poweredOff } from "./lifecycle-fixture.js";
import {
  attach,
  bootDriven,
  type Disk,
  field,
  GUEST_REGISTRY,
  pushKairosImage,
  slots,
} from "./node-driver.js";

const MIN = 60_000;
/** After the first panic, only the initramfs' own failure ends a wait early. */
const FAIL = [/KAIROS-INITRAMFS-FAILED[^\r\n]*/];

/** `kairos init --version v3-broken` plus a layer whose /sbin/init exits at once. */
async function pushBrokenImage(layout: string, reg: TestRegistry): Promise<void> {
  const base = await ensureDefaultBase({});
  await kairosInit(base.ref, `oci:${layout}:v3`, { osVersion: "v3-broken" });
  const v3 = await openImage(`oci:${layout}:v3`);
  try {
    const init = Buffer.from("#!/bin/sh\necho KAIROS-E2E-BROKEN-INIT >/dev/console\nexit 1\n");
    const header = { path: "usr/sbin/init", type: "file", mode: 0o755, uid: 0, gid: 0, mtime: 0 } as const;
    const bad = await appendLayer(v3, writeTar([{ header: { ...header, size: init.length }, body: init }]), {
      history: { created_by: "e2e: an init that cannot start" },
    });
    try {
      await writeImage(bad, `docker://${reg.host}/kairos-e2e:v3-broken`, { insecure: true });
    } finally {
      await bad.close();
    }
  } finally {
    await v3.close();
  }
}

/** `re`, but matching only the log after `offset` (the boots of one QEMU run share a log). */
function after_(re: RegExp, offset: number): RegExp {
  const r = new RegExp(re.source, re.flags.replace("g", ""));
  const exec = RegExp.prototype.exec.bind(r);
  r.exec = (s: string) => {
    const m = exec(s.slice(offset));
    if (m) m.index += offset;
    return m;
  };
  return r;
}

/** Reads one QEMU run's serial log in order: each wait starts where the last match ended. */
class Serial {
  private pos = 0;
  constructor(
    private readonly vm: Vm,
    private readonly timings: string[],
    private readonly run: string,
  ) {}

  /** The log since the last match (this boot's lines, not the earlier boots' of this run). */
  since(): string {
    return this.vm.log().slice(this.pos);
  }

  async next(re: RegExp, timeoutMs: number, what?: string): Promise<string> {
    const r = await this.vm.waitFor(
      after_(re, this.pos),
      timeoutMs,
      FAIL.map((f) => after_(f, this.pos)),
    );
    this.pos = this.vm.log().indexOf(r.match, this.pos) + r.match.length;
    if (what) this.timings.push(`${this.run} ${what}: ${r.seconds.toFixed(0)}s`);
    return r.match;
  }
}

describe("upgrade, broken-init fallback, power cuts and reset on an installed node (QEMU TCG, UEFI)", {
  timeout: 150 * MIN,
}, () => {
  let work: string;
  let reg: TestRegistry;
  let disk: Disk;
  const good = `oci:${GUEST_REGISTRY}/kairos-e2e:v2`;
  const broken = `oci:${GUEST_REGISTRY}/kairos-e2e:v3-broken`;
  const forRecovery = `oci:${GUEST_REGISTRY}/kairos-e2e:v4`;
  const timings: string[] = [];
  const t0 = Date.now();
  let b1 = "";

  before(async () => {
    work = (await run("mktemp", ["-d", "/var/tmp/kairos-lc-upgrade-XXXXXX"])).stdout.trim();
    reg = await startRegistry();
    // The images are built on the host while the installed-disk fixture waits for QEMU.
    // One layout each: two writers of one layout's index race.
    const [fx] = await Promise.all([
      installedDiskFixture(),
      pushKairosImage(join(work, "images-v2"), reg, "v2", "v2.0.0-e2e"),
      pushBrokenImage(join(work, "images-v3"), reg),
      pushKairosImage(join(work, "images-v4"), reg, "v4", "v4.0.0-recovery"),
    ]);
    const raw = join(work, "disk.raw");
    await run("cp", ["--sparse=always", "--reflink=auto", fx.disk, raw]);
    disk = await attach(raw, join(work, "mnt"));
    timings.push(`setup (fixture, images, disk copy): ${((Date.now() - t0) / 1000).toFixed(0)}s`);
  });

  after(async () => {
    timings.push(`whole file: ${((Date.now() - t0) / 1000).toFixed(0)}s`);
    console.log(timings.join("\n"));
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** One QEMU run with this run's driver; QEMU is always killed after `fn`. */
  async function qemuRun<T>(
    name: string,
    script: string,
    reboot: boolean,
    fn: (s: Serial, vm: Vm) => Promise<T>,
  ): Promise<T> {
    const started = Date.now();
    const vm = await bootDriven({ disk, workDir: join(work, name), reg, script, reboot });
    const lockWait = (Date.now() - started) / 1000;
    try {
      return await fn(new Serial(vm, timings, name), vm);
    } finally {
      await vm.stop();
      timings.push(
        `${name}: QEMU ran ${vm.elapsed().toFixed(0)}s${lockWait > 5 ? ` (after ${lockWait.toFixed(0)}s waiting for the QEMU lock)` : ""}`,
      );
    }
  }

  const UP = /E2E UP [^\r\n]*/;
  const DONE = /E2E UPGRADE rc=\d+[^\r\n]*/;
  const CMDLINE = /Command line: [^\r\n]*/;

  it("R1: upgrades v0 to v2 from the registry: v2 active, v0 passive, trial set", async () => {
    await qemuRun("R1", `upgrade ${good}\nsystemctl poweroff\n`, false, async (s, vm) => {
      b1 = await s.next(UP, 15 * MIN, "B1 up");
      assert.equal(field(b1, "boot"), "active_boot", b1);
      const done = await s.next(DONE, 40 * MIN, "B1 upgrade done");
      assert.match(done, /rc=0 .*Upgrade completed/, vm.tail(30));
      await poweredOff(vm, 5 * MIN);
    });
    await disk.withPartitions(async ({ oem, state }) => {
      const sl = await slots(state);
      assert.equal(sl.active, "v2.0.0-e2e");
      assert.equal(sl.passive, field(b1, "version"));
      assert.equal((await readGrubenv(join(oem, "grubenv"))).get("boot_assessment"), "trial");
    });
  });

  it("R2: v2 confirmed; an upgrade whose init cannot start comes back on passive by itself", async () => {
    const driver = `if [ -e /run/cos/active_mode ]; then
	echo kept >/usr/local/e2e-data; sync
	upgrade ${broken}
	say REBOOT; systemctl reboot
elif [ -e /run/cos/passive_mode ]; then
	upgrade ${good}
fi
`;
    await qemuRun("R2", driver, true, async (s, vm) => {
      const b2 = await s.next(UP, 15 * MIN, "B2 up");
      assert.equal(field(b2, "boot"), "active_boot", b2);
      assert.equal(field(b2, "version"), "v2.0.0-e2e");
      assert.ok(field(b1, "fp").startsWith("SHA256:"), b1);
      assert.equal(field(b2, "fp"), field(b1, "fp"), "the SSH host key survives the upgrade");
      assert.doesNotMatch(b2, /boot_assessment=/, "kairos-boot-assessment confirmed the trial");
      assert.match(await s.next(DONE, 40 * MIN, "B2 upgrade to v3-broken done"), /rc=0 .*Upgrade completed/);
      await s.next(/E2E REBOOT/, 2 * MIN);
      // B3: GRUB boots the trial (cos); its init dies; panic=5 reboots inside this QEMU.
      assert.match(await s.next(CMDLINE, 10 * MIN), /root=LABEL=COS_ACTIVE/);
      await s.next(/KAIROS-E2E-BROKEN-INIT/, 10 * MIN, "B3 broken init ran");
      await s.next(/Kernel panic - not syncing[^\r\n]*/, 2 * MIN, "B3 panic");
      // B4: GRUB found the trial `tried`: the fallback entry, by itself.
      assert.match(await s.next(CMDLINE, 5 * MIN), /root=LABEL=COS_PASSIVE/);
      const b4 = await s.next(UP, 15 * MIN, "B4 up");
      assert.equal(field(b4, "boot"), "passive_boot", b4);
      assert.equal(field(b4, "version"), "v2.0.0-e2e");
      assert.equal(field(b4, "failure"), "true", "state shows upgrade_failure");
      assert.equal(field(b4, "runfile"), "yes", "/run/cos/upgrade_failure exists");
      assert.equal(field(b4, "data"), "kept");
      // Power cut 1: while the image streams into the new slot.
      await s.next(/upgrade: checked/, 20 * MIN, "B4 upgrade checked");
      await new Promise((r) => setTimeout(r, 20_000));
      assert.doesNotMatch(s.since(), /upgrade: written/, "the cut falls while the image is written");
      timings.push(`R2 power cut 1 (mid-stream) at ${vm.elapsed().toFixed(0)}s`);
    });
    await disk.withPartitions(async ({ oem, state }) => {
      const env = await readGrubenv(join(oem, "grubenv"));
      assert.equal(env.get("upgrade_failure"), "1");
      assert.equal(env.get("fallback_assessment"), undefined, "the fallback boot confirmed");
      assert.deepEqual(await slots(state), { active: "v3-broken", passive: "v2.0.0-e2e" });
    });
  });

  it("R3: after cut 1 the next boot is passive again (no loop); cut 2 right after the image is written", async () => {
    await qemuRun("R3", `upgrade ${good}\n`, false, async (s, vm) => {
      const b5 = await s.next(UP, 15 * MIN, "B5 up");
      assert.equal(field(b5, "boot"), "passive_boot", b5);
      assert.equal(field(b5, "version"), "v2.0.0-e2e");
      await s.next(/upgrade: written/, 40 * MIN, "B5 upgrade written (power cut 2)");
      const steps = s.since().match(/upgrade: [a-z]+|Upgrade completed/g) ?? [];
      timings.push(`R3 power cut 2 after: ${steps.slice(-1)[0] ?? "upgrade: written"}`);
    });
    await disk.withPartitions(async ({ oem, state }) => {
      const sl = await slots(state); // both names resolve to slots with a slot.json
      const env = await readGrubenv(join(oem, "grubenv"));
      timings.push(`after cut 2: ${JSON.stringify(sl)} grubenv ${JSON.stringify([...env])}`);
    });
  });

  it("R4: the next boot works; upgrade --recovery, then reset through statereset: persistent data gone, OEM kept, active from the new recovery", async () => {
    const driver = `if [ -e /run/cos/recovery_mode ]; then
	say RECOVERY
elif [ -e /usr/local/e2e-data ]; then
	upgrade ${forRecovery} --recovery
	# --reboot: its output must reach the console before the shutdown stops this unit.
	kairos-agent reset --reboot 2>&1 | while read -r l; do say "RESET $l"; done
else
	systemctl poweroff
fi
`;
    await qemuRun("R4", driver, true, async (s, vm) => {
      const b6 = await s.next(UP, 15 * MIN, "B6 up");
      assert.match(field(b6, "boot"), /^(active|passive)_boot$/, b6);
      assert.equal(field(b6, "version"), "v2.0.0-e2e");
      assert.equal(field(b6, "data"), "kept");
      assert.match(
        await s.next(DONE, 40 * MIN, "B6 upgrade --recovery done"),
        /rc=0 .*Upgrade completed/,
        vm.tail(30),
      );
      await s.next(/E2E RESET [^\r\n]*statereset[^\r\n]*/, 5 * MIN, "B6 reset requested");
      // B7: next_entry=statereset boots recovery with kairos.reset; kairos-reset.service resets.
      assert.match(await s.next(CMDLINE, 10 * MIN), /root=LABEL=COS_SYSTEM .*kairos\.reset/);
      await s.next(/Reset completed/, 20 * MIN, "B7 reset done");
      assert.match(await s.next(CMDLINE, 10 * MIN), /root=LABEL=COS_ACTIVE/);
      const b8 = await s.next(UP, 15 * MIN, "B8 up");
      assert.equal(field(b8, "boot"), "active_boot", b8);
      assert.equal(field(b8, "data"), "none", "COS_PERSISTENT was wiped");
      assert.match(field(b8, "oem"), /90_custom\.yaml/, "COS_OEM kept");
      assert.equal(field(b8, "version"), "v4.0.0-recovery", "the system came from the upgraded recovery");
      await poweredOff(vm, 5 * MIN);
    });
    await disk.withPartitions(async ({ oem, state }) => {
      const env = await readGrubenv(join(oem, "grubenv"));
      for (const v of ["next_entry", "boot_assessment", "upgrade_failure", "fallback_assessment"]) {
        assert.equal(env.get(v), undefined, `${v} cleared by the reset`);
      }
      const sl = await slots(state);
      assert.equal(sl.active, "v4.0.0-recovery");
      assert.equal(sl.passive, "v4.0.0-recovery");
    });
  });
});
