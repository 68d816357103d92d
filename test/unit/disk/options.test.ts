import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diskLayout, emptyGrubenv, slotId } from "../../../src/artifacts/index.js";
import { auroraBootDiskPlan } from "../../../src/cli/commands/auroraboot-disk.js";
import { parseDiskSize } from "../../../src/cli/commands/disk.js";

const MIB = 1024 * 1024;

describe("disk image options", () => {
  it("sizes: a bare number is MiB (AuroraBoot's MB), units are powers of 1024", () => {
    assert.equal(parseDiskSize("--size", "16000"), 16000 * MIB);
    assert.equal(parseDiskSize("--size", "512M"), 512 * MIB);
    assert.equal(parseDiskSize("--size", "8G"), 8192 * MIB);
    assert.equal(parseDiskSize("--size", "2GiB"), 2048 * MIB);
    assert.equal(parseDiskSize("--size", "1T"), 1024 * 1024 * MIB);
    for (const bad of ["", "0", "-1", "1.5G", "8X", "lots"]) {
      assert.throws(() => parseDiskSize("--size", bad), /is not a size/, bad);
    }
  });

  it("the layout is the installed node's, with state/recovery sized from the slot", () => {
    const { specs, requests } = diskLayout(200 * MIB);
    assert.deepEqual(
      specs.map((s) => [s.name, s.label ?? "", s.fs]),
      [
        ["bios", "", "none"],
        ["efi", "COS_GRUB", "vfat"],
        ["oem", "COS_OEM", "ext4"],
        ["recovery", "COS_RECOVERY", "ext4"],
        ["state", "COS_STATE", "ext4"],
        ["persistent", "COS_PERSISTENT", "ext4"],
      ],
    );
    assert.deepEqual(
      requests.map((r) => r.size),
      [MIB, 64 * MIB, 64 * MIB, 724 * MIB, 724 * MIB, undefined],
    );
    // COS_RECOVERY has room for `kairos-agent upgrade --recovery` (the new slot beside the old);
    // one slot's worth is still accepted when asked for.
    assert.equal(diskLayout(200 * MIB, { recovery: 284 * MIB }).requests[3]!.size, 284 * MIB);
    assert.equal(diskLayout(200 * MIB, { state: 4096 * MIB }).requests[4]!.size, 4096 * MIB);
    assert.throws(
      () => diskLayout(200 * MIB, { state: 100 * MIB }),
      /COS_STATE of 100 MiB cannot hold the system \(200 MiB\)/,
    );
    assert.throws(
      () => diskLayout(200 * MIB, { recovery: 100 * MIB }),
      (e: Error & { hint?: string }) =>
        /COS_RECOVERY of 100 MiB/.test(e.message) && /at least 284 MiB/.test(e.hint ?? ""),
    );
  });

  it("AuroraBoot's disk keys become builds; sizes alone are refused", () => {
    assert.equal(auroraBootDiskPlan(["container_image=x", "disk.efi=false"]), undefined);
    const p = auroraBootDiskPlan([
      "disk.bios=true",
      "disk.gce=1",
      "disk.state_size=6000",
      "disk.size=16000",
    ])!;
    assert.deepEqual(
      p.targets.map((t) => [t.key, t.format, t.boot]),
      [
        ["disk.bios", "raw", "bios"],
        ["disk.gce", "gce", "hybrid"],
      ],
    );
    assert.deepEqual(p.sizes, { disk: 16000 * MIB, state: 6000 * MIB, recovery: undefined });
    assert.throws(() => auroraBootDiskPlan(["disk.raw=maybe"]), /not a boolean/);
    assert.throws(() => auroraBootDiskPlan(["disk.state_size=6000"]), /without a disk to build/);
    assert.throws(
      () => auroraBootDiskPlan(["disk.raw=true", "disk.size=big"]),
      /--set disk.size 'big' is not a size/,
    );
  });

  it("grubenv is GRUB's empty 1024-byte block; slot ids are reproducible and look like the installer's", () => {
    const env = emptyGrubenv();
    assert.equal(env.length, 1024);
    assert.match(env.toString(), /^# GRUB Environment Block\n#{999}$/);
    assert.equal(slotId(1700000000, "a"), slotId(1700000000, "a"));
    assert.notEqual(slotId(1700000000, "a"), slotId(1700000000, "b"));
    assert.match(slotId(1700000000, "a"), /^20231114T221320Z-[0-9a-f]{6}$/);
  });
});
