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
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { readGrubenv } from "../../src/agent/index.js";
import { run } from "../../src/sys/index.js";
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
    const [fx] = await Promise.all([
      installedDiskFixture(),
      pushKairosImage(join(work, "images"), reg, "v2", "v2.0.0-e2e"),
    ]);
    const raw = join(work, "disk.raw");
    await run("cp", ["--sparse=always", "--reflink=auto", fx.disk, raw]);
    disk = await attach(raw, join(work, "mnt"));
    good = `oci:${GUEST_REGISTRY}/kairos-e2e:v2`;
  });

  after(async () => {
    console.log(timings.join("\n"));
    await reg?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Boot with this boot's driver and hand the VM to `fn` (always stopped after). */
  async function bootWith<T>(name: string, script: string, fn: (vm: Vm) => Promise<T>): Promise<T> {
    const vm = await bootDriven({ disk, workDir: join(work, name), reg, script });
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
