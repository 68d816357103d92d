/**
 * The disk-image building blocks against independent tools: our GPT checked by sgdisk -v and
 * read back by sfdisk --json; ext4 and FAT filesystems written in place at their partition's
 * offset checked by e2fsck / fsck.vfat on the extracted partition, read by GRUB's own drivers
 * (grub-fstest), and byte-identical when built twice.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  createDiskFile,
  GPT_TYPE,
  partitionNamed,
  planDisk,
  writeExt4,
  writeVfat,
} from "../../src/disk/index.js";
import { tempDir } from "../helpers/tmp.js";

const MIB = 1024 * 1024;

const LAYOUT = [
  { name: "BIOS boot", type: GPT_TYPE.biosBoot, size: MIB },
  { name: "COS_GRUB", type: GPT_TYPE.efiSystem, size: 64 * MIB },
  { name: "COS_OEM", type: GPT_TYPE.linux, size: 16 * MIB },
  { name: "COS_PERSISTENT", type: GPT_TYPE.linux, minSize: 16 * MIB },
];

function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

function extract(disk: string, offset: number, size: number, out: string): void {
  sh("dd", [
    `if=${disk}`,
    `of=${out}`,
    "bs=1M",
    `skip=${offset / MIB}`,
    `count=${size / MIB}`,
    "status=none",
  ]);
}

describe("disk building blocks, checked by independent tools", () => {
  it("sgdisk -v finds no problem in our GPT; sfdisk reads names, types and GUIDs", async (t) => {
    const dir = await tempDir(t);
    const disk = join(dir, "disk.raw");
    const plan = planDisk(LAYOUT, { diskSize: 200 * MIB, seed: "test" });
    await createDiskFile(disk, plan);
    assert.equal(statSync(disk).size, 200 * MIB);
    assert.ok(statSync(disk).blocks * 512 < MIB, "the file is sparse");
    const v = sh("sgdisk", ["-v", disk]);
    assert.match(v, /No problems found/, v);
    const j = JSON.parse(sh("sfdisk", ["--json", disk])).partitiontable;
    assert.equal(j.label, "gpt");
    assert.equal(j.id, plan.diskGuid);
    assert.deepEqual(
      j.partitions.map((p: { name: string; type: string; uuid: string; start: number; size: number }) => [
        p.name,
        p.type,
        p.uuid,
        p.start,
        p.size,
      ]),
      plan.partitions.map((p) => [p.name, p.type, p.guid, p.firstLba, p.lastLba - p.firstLba + 1]),
    );
    // The protective MBR, as fdisk's MBR view sees it.
    const mbr = readFileSync(disk).subarray(0, 512);
    assert.equal(mbr[0x1be + 4], 0xee);
  });

  it("ext4 from a directory, in place: e2fsck clean, root-owned, GRUB reads it, same bytes twice", async (t) => {
    const dir = await tempDir(t);
    const tree = join(dir, "tree");
    mkdirSync(join(tree, "cOS/slots/a"), { recursive: true });
    writeFileSync(join(tree, "cOS/slots/a/system.img"), "system\n");
    symlinkSync("slots/a", join(tree, "cOS/active"));
    const build = async (name: string) => {
      const disk = join(dir, name);
      const plan = planDisk(LAYOUT, { diskSize: 128 * MIB, seed: "test" });
      await createDiskFile(disk, plan);
      const p = partitionNamed(plan, "COS_OEM");
      await writeExt4({
        file: disk,
        offset: p.offset,
        size: p.size,
        label: "COS_OEM",
        uuid: p.guid.toLowerCase(),
        dir: tree,
        epoch: 1700000000,
      });
      return { disk, p, plan };
    };
    const a = await build("a.raw");
    // Touch the tree between builds: host atimes/ctimes must not leak into the image.
    utimesSync(join(tree, "cOS/slots/a/system.img"), new Date(), new Date());
    await new Promise((r) => setTimeout(r, 1100));
    const b = await build("b.raw");
    assert.ok(readFileSync(a.disk).equals(readFileSync(b.disk)), "two builds of the same inputs differ");
    const part = join(dir, "oem.img");
    extract(a.disk, a.p.offset, a.p.size, part);
    sh("e2fsck", ["-fn", part]);
    const sb = sh("dumpe2fs", ["-h", part]);
    assert.match(
      sb,
      new RegExp(`Block count:\\s+${a.p.size / 4096}\\n`),
      "the filesystem fills its partition",
    );
    assert.match(sb, /Block size:\s+4096/);
    const st = sh("debugfs", ["-R", "stat /cOS/slots/a/system.img", part]);
    assert.match(st, /User:\s+0\s+Group:\s+0/);
    assert.match(st, /mtime: 0x6553f100/);
    assert.match(sh("blkid", ["-o", "export", part]), /LABEL=COS_OEM/);
    assert.equal(sh("grub-fstest", [part, "cat", "/cOS/active/system.img"]), "system\n");
    // The neighbours were not touched: the GPT still verifies.
    assert.match(sh("sgdisk", ["-v", a.disk]), /No problems found/);
  });

  it("FAT in place with mtools: fsck.vfat clean, label and files there", async (t) => {
    const dir = await tempDir(t);
    const disk = join(dir, "disk.raw");
    const plan = planDisk(LAYOUT, { diskSize: 128 * MIB, seed: "test" });
    await createDiskFile(disk, plan);
    const p = partitionNamed(plan, "COS_GRUB");
    const loader = join(dir, "BOOTX64.EFI");
    writeFileSync(loader, "not really an EFI binary\n");
    await writeVfat({
      file: disk,
      offset: p.offset,
      size: p.size,
      label: "COS_GRUB",
      volumeId: "4B41524F",
      files: [{ from: loader, to: "EFI/BOOT/BOOTX64.EFI" }],
    });
    const part = join(dir, "esp.img");
    extract(disk, p.offset, p.size, part);
    sh("fsck.vfat", ["-n", part]);
    const ls = sh("mdir", ["-i", part, "::/EFI/BOOT"]);
    assert.match(ls, /BOOTX64\s+EFI\s+25\s+1980-01-01/);
    const id = sh("blkid", ["-o", "export", part]);
    assert.match(id, /LABEL=COS_GRUB/);
    assert.match(sh("file", ["-b", part]), /FAT \(32 bit\)/);
    assert.match(sh("sgdisk", ["-v", disk]), /No problems found/);
    await assert.rejects(
      writeVfat({
        file: disk,
        offset: p.offset,
        size: p.size,
        label: "cos grub",
        volumeId: "4B41524F",
        files: [],
      }),
      /FAT label 'cos grub'/,
    );
  });
});
