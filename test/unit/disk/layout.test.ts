import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DEFAULT_SIZES_MIB,
  layoutFromConfig,
  minimumDiskMiB,
  mkfsCommand,
  partitionPath,
  placeLayout,
} from "../../../src/disk/index.js";

const GiB = 1024 ** 3;

test("the default layout is upstream's: bios, efi, oem, recovery, state, persistent (the rest)", () => {
  const l = layoutFromConfig({});
  assert.deepEqual(
    l.partitions.map((p) => [p.name, p.label ?? "", p.fs, p.gptType, p.sizeMiB]),
    [
      ["bios", "", "none", "EF02", 1],
      ["efi", "COS_GRUB", "vfat", "EF00", 64],
      ["oem", "COS_OEM", "ext4", "8300", 64],
      ["recovery", "COS_RECOVERY", "ext4", "8300", 8192],
      ["state", "COS_STATE", "ext4", "8300", 15360],
      ["persistent", "COS_PERSISTENT", "ext4", "8300", 0],
    ],
  );
  assert.equal(DEFAULT_SIZES_MIB.state, 15360);
});

test("install.partitions sizes and extra-partitions are honoured; persistent takes the rest", () => {
  const l = layoutFromConfig({
    partitions: { state: { size: 3000 }, recovery: { size: "1500" }, oem: { size: 100, fs: "ext2" } },
    "extra-partitions": [{ name: "data", size: 500, fs: "xfs", label: "DATA" }],
  });
  const parts = placeLayout(l, 20 * GiB);
  const by = Object.fromEntries(parts.map((p) => [p.name, p]));
  assert.equal(by.state!.placedMiB, 3000);
  assert.equal(by.recovery!.placedMiB, 1500);
  assert.equal(by.oem!.fs, "ext2");
  assert.equal(by.data!.number, 7);
  assert.equal(by.data!.label, "DATA");
  assert.equal(by.persistent!.placedMiB, 20 * 1024 - 2 - (1 + 64 + 100 + 1500 + 3000 + 500));
  // Partitions follow each other from 1 MiB.
  for (let i = 1; i < parts.length; i++) {
    assert.equal(parts[i]!.startMiB, parts[i - 1]!.startMiB + parts[i - 1]!.placedMiB);
  }
  assert.equal(parts[0]!.startMiB, 1);
});

test("a disk that is too small is refused, saying how large it must be", () => {
  const l = layoutFromConfig({});
  const need = minimumDiskMiB(l);
  assert.equal(need, 2 + 1 + 64 + 64 + 8192 + 15360 + 64);
  assert.throws(
    () => placeLayout(l, 4 * GiB, "/dev/vdb"),
    new RegExp(`/dev/vdb is too small: 4096 MiB, the layout needs at least ${need} MiB`),
  );
  assert.doesNotThrow(() => placeLayout(l, need * 1024 * 1024));
});

test("bad partition settings are refused naming the key", () => {
  assert.throws(
    () => layoutFromConfig({ partitions: { state: { size: -1 } } }),
    /install\.partitions\.state\.size/,
  );
  assert.throws(
    () => layoutFromConfig({ partitions: { oem: { fs: "btrfs" } } }),
    /install\.partitions\.oem\.fs "btrfs"/,
  );
  assert.throws(
    () => layoutFromConfig({ "extra-partitions": [{ name: "a" }] }),
    /more than one partition takes the rest of the disk \(size 0\): persistent, a/,
  );
  assert.throws(
    () => layoutFromConfig({ "extra-partitions": [{ name: "a", size: 10, label: "COS_OEM" }] }),
    /two partitions have the label COS_OEM/,
  );
  assert.throws(() => layoutFromConfig({ "extra-partitions": "x" }), /must be a list/);
});

test("how the layout is written: partition nodes, mkfs commands", () => {
  const parts = placeLayout(layoutFromConfig({}), 30 * GiB);
  assert.equal(partitionPath("/dev/vda", 3), "/dev/vda3");
  assert.equal(partitionPath("/dev/nvme0n1", 3), "/dev/nvme0n1p3");
  assert.equal(mkfsCommand(parts[0]!, "/dev/vda1"), undefined);
  assert.deepEqual(mkfsCommand(parts[1]!, "/dev/vda2"), [
    "mkfs.vfat",
    ["-F", "32", "-n", "COS_GRUB", "/dev/vda2"],
  ]);
  assert.deepEqual(mkfsCommand(parts[4]!, "/dev/vda5"), [
    "mkfs.ext4",
    ["-F", "-q", "-O", "^metadata_csum_seed", "-L", "COS_STATE", "/dev/vda5"],
  ]);
});
