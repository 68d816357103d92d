/**
 * Disk images boot straight into the installed system and upgrade like an installed node
 * (QEMU TCG, serial markers, bounded timeouts). `kairos build disk` of the default base (init
 * on the fly) with a cloud-config user (test/e2e/disk-fixture.ts), three boots in all:
 *
 * D1  a sparse copy of the hybrid raw disk, UEFI (OVMF → BOOTX64.EFI on COS_GRUB): active_boot,
 *     the cloud-config user, the config on COS_OEM, nothing grown; then, driven from COS_OEM as
 *     the lifecycle test does (test/e2e/node-driver.ts: a network that reaches only the test
 *     registry), data is written to COS_PERSISTENT and `kairos-agent upgrade` to v2 runs and
 *     the node powers off. On the disk: active is v2, passive the image's own version, the
 *     boot-assessment trial set.
 * D2  the same disk grown by 2 GiB, BIOS (SeaBIOS → our boot.img → core.img in the BIOS boot
 *     partition): v2 comes up as active_boot, the user and the data are still there,
 *     COS_PERSISTENT has grown to the end of the disk and the trial was confirmed.
 * D3  an EFI-only qcow2 built by the builder itself boots to active_boot.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readGrubenv } from "../../src/agent/index.js";
import { run } from "../../src/sys/index.js";
import { boot, type Vm } from "../helpers/qemu.js";
import { startRegistry, type TestRegistry } from "../helpers/registry.js";
import { tempDir } from "../helpers/tmp.js";
import { diskFixture } from "./disk-fixture.js";
import { LOCK_WAIT_MS, poweredOff } from "./lifecycle-fixture.js";
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
const UP = /KAIROS-DISK-UP [^\r\n]*/;
const V2 = "v2.0.0-e2e";
/** What the drivers print besides the common UP line: the user and COS_PERSISTENT as the node sees them. */
const DISK_SAY = `say "DISK user=$(id -u kairos 2>/dev/null || echo none) persistent_mib=$(df -P -m /usr/local | awk 'NR==2 {print $2}')"\n`;

describe("disk images boot and upgrade under QEMU (TCG)", { timeout: 120 * MIN }, () => {
  let work: string;
  let reg: TestRegistry;
  let disk: Disk;
  let built: { active: string; passive: string };
  const timings: string[] = [];

  before(async () => {
    work = (await run("mktemp", ["-d", "/var/tmp/kairos-disk-boot-XXXXXX"])).stdout.trim();
    reg = await startRegistry();
    const [fx] = await Promise.all([
      diskFixture("raw", "hybrid"),
      pushKairosImage(join(work, "images"), reg, "v2", V2),
    ]);
    timings.push(`raw hybrid disk: ${fx.file} (built in ${fx.buildSeconds.toFixed(0)} s, cached afterwards)`);
    const raw = join(work, "disk.raw");
    await run("cp", ["--sparse=always", "--reflink=auto", fx.file, raw]);
    disk = await attach(raw, join(work, "mnt"));
    built = await disk.withPartitions(({ state }) => slots(state));
  });

  after(async () => {
    console.log(timings.join("\n"));
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Boot with this boot's driver and hand the VM to `fn` (always stopped after). */
  async function bootWith<T>(
    name: string,
    firmware: "uefi" | "bios",
    script: string,
    fn: (vm: Vm) => Promise<T>,
  ): Promise<T> {
    const vm = await bootDriven({ disk, workDir: join(work, name), reg, script, firmware });
    try {
      return await fn(vm);
    } finally {
      await vm.stop();
    }
  }

  async function lines(vm: Vm, name: string): Promise<{ up: string; disk: string }> {
    const up = await vm.waitFor(/E2E UP [^\r\n]*/, 15 * MIN);
    const d = await vm.waitFor(/E2E DISK [^\r\n]*/, 2 * MIN);
    timings.push(`${name}: up after ${up.seconds.toFixed(0)} s: ${up.match}`, `${name}: ${d.match}`);
    return { up: up.match, disk: d.match };
  }

  it("raw hybrid disk, UEFI: active_boot, the cloud-config user, config on COS_OEM, nothing grown; upgrade to v2 from the registry", async () => {
    assert.equal(built.active, built.passive, "the built disk's active and passive are one slot");
    assert.notEqual(built.active, V2);
    const t0 = Date.now();
    await bootWith(
      "d1",
      "uefi",
      `${DISK_SAY}echo disk-image-data >/usr/local/e2e-data && sync\nupgrade oci:${GUEST_REGISTRY}/kairos-e2e:v2\nsystemctl poweroff\n`,
      async (vm) => {
        const report = await vm.waitFor(UP, 15 * MIN);
        timings.push(`d1 (uefi/raw): report after ${report.seconds.toFixed(0)} s: ${report.match}`);
        assert.equal(field(report.match, "boot"), "active_boot", report.match);
        assert.match(field(report.match, "user"), /^\d+$/, report.match);
        assert.match(field(report.match, "oem"), /90_custom\.yaml/, report.match);
        const l = await lines(vm, "d1");
        assert.equal(field(l.up, "version"), built.active, l.up);
        const done = await vm.waitFor(/E2E UPGRADE rc=\d+[^\r\n]*/, 40 * MIN);
        timings.push(`d1: ${done.match} (at ${done.seconds.toFixed(0)} s)`);
        assert.match(done.match, /rc=0 .*Upgrade completed/, vm.tail(30));
        const off = await poweredOff(vm, 5 * MIN);
        timings.push(`d1: powered off after ${off.toFixed(0)} s`);
        assert.doesNotMatch(vm.log(), /KAIROS-GROW: COS_PERSISTENT/);
      },
    );
    timings.push(`d1: boot ${((Date.now() - t0) / 1000).toFixed(0)} s with the lock wait`);
    await disk.withPartitions(async ({ oem, state }) => {
      const s = await slots(state);
      assert.equal(s.active, V2);
      assert.equal(s.passive, built.active, "passive is the disk image's own system");
      assert.equal((await readGrubenv(join(oem, "grubenv"))).get("boot_assessment"), "trial");
    });
  });

  it("the upgraded disk grown by 2 GiB, BIOS: v2 active_boot, user and data kept, COS_PERSISTENT grown, trial confirmed", async () => {
    await run("truncate", ["-s", "+2G", disk.raw]);
    const t0 = Date.now();
    const l = await bootWith("d2", "bios", `${DISK_SAY}sleep 5\nsystemctl poweroff\n`, async (vm) => {
      const r = await lines(vm, "d2");
      const off = await poweredOff(vm, 5 * MIN);
      timings.push(`d2: powered off after ${off.toFixed(0)} s`);
      return { ...r, log: vm.log() };
    });
    timings.push(`d2: boot ${((Date.now() - t0) / 1000).toFixed(0)} s with the lock wait`);
    assert.equal(field(l.up, "boot"), "active_boot", l.up);
    assert.equal(field(l.up, "version"), V2, l.up);
    assert.equal(field(l.up, "data"), "disk-image-data", l.up);
    assert.match(field(l.disk, "user"), /^\d+$/, l.disk);
    const grow = /KAIROS-GROW: COS_PERSISTENT (\d+) -> (\d+) MiB/.exec(l.log);
    assert.ok(grow, "no KAIROS-GROW line on the console");
    assert.ok(Number(grow[2]) - Number(grow[1]) >= 2047, grow[0]);
    // The filesystem the system sees has grown with it (df's size, within ext4's overhead).
    assert.ok(Number(field(l.disk, "persistent_mib")) > 2000, l.disk);
    // The table on the disk: backup header at the end, partition 6 to the last usable sector.
    const v = execFileSync("sgdisk", ["-v", disk.raw], { encoding: "utf8" });
    assert.match(v, /No problems found/, v);
    await disk.withPartitions(async ({ oem, state }) => {
      assert.equal((await readGrubenv(join(oem, "grubenv"))).get("boot_assessment"), undefined);
      assert.equal((await slots(state)).active, V2);
    });
  });

  it("qcow2 (EFI only), built by the builder: boots to active_boot", async (t) => {
    const fx = await diskFixture("qcow2", "efi");
    const info = JSON.parse(
      execFileSync("qemu-img", ["info", "--output=json", fx.file], { encoding: "utf8" }),
    );
    assert.equal(info.format, "qcow2");
    const dir = await tempDir(t);
    const vm = await boot({
      firmware: "uefi",
      workDir: dir,
      extraArgs: ["-drive", `file=${fx.file},format=qcow2,if=virtio,snapshot=on`],
      lockTimeoutMs: LOCK_WAIT_MS,
    });
    try {
      await vm.waitFor(/KAIROS-INITRAMFS: switching root/, 10 * MIN);
      const up = await vm.waitFor(UP, 15 * MIN);
      timings.push(`d3 (uefi/qcow2): up after ${up.seconds.toFixed(0)} s: ${up.match}`);
      assert.equal(field(up.match, "boot"), "active_boot", up.match);
    } finally {
      await vm.stop();
    }
  });
});
