/**
 * The installer's GRUB step (src/agent/install-grub.ts) on a real GPT disk file with the real
 * grub-mkimage: boot.img lands in the MBR pointing at core.img in the BIOS boot partition, the
 * partition table survives (sgdisk -v), BOOTX64.EFI carries the early config that finds
 * COS_STATE, and a core image that does not fit is refused with the disk untouched. That the
 * images boot is the lifecycle e2e's job (UEFI install, then UEFI and BIOS boots of the disk).
 */
import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { findGrubTools, installGrubImages, loadGrubCfg } from "../../src/agent/index.js";
import { run } from "../../src/sys/index.js";
import { tempDir } from "../helpers/tmp.js";

const REPO = join(import.meta.dirname, "..", "..");
const GRUB_CFG = join(REPO, "framework/grub/grub.cfg");

async function gptDisk(dir: string, biosMiB: number): Promise<string> {
  const disk = join(dir, "disk.raw");
  await run("truncate", ["-s", "64M", disk]);
  await run("sgdisk", [
    `--new=1:1M:+${biosMiB}M`,
    "--typecode=1:EF02",
    "--new=2:0:+16M",
    "--typecode=2:EF00",
    "--new=3:0:0",
    "--typecode=3:8300",
    disk,
  ]);
  return disk;
}

function target(dir: string, disk: string, sectors: number) {
  const stateDir = join(dir, "state");
  const efiDir = join(dir, "efi");
  mkdirSync(stateDir);
  mkdirSync(efiDir);
  return {
    device: disk,
    bios: { firstLba: 2048, sectors },
    stateDir,
    efiDir,
    grubCfg: readFileSync(GRUB_CFG, "utf8"),
    workDir: join(dir, "work"),
    tools: findGrubTools(),
  };
}

test("GRUB for BIOS and UEFI from grub-mkimage: MBR, BIOS boot partition, BOOTX64.EFI, grub.cfg", async (t) => {
  const dir = await tempDir(t);
  const disk = await gptDisk(dir, 1);
  const before = readFileSync(disk).subarray(0, 512);
  const tg = target(dir, disk, 2048);
  const lines: string[] = [];
  await installGrubImages(tg, (l) => lines.push(l));

  const img = readFileSync(disk);
  const bootImg = readFileSync(join(tg.tools.i386pc, "boot.img"));
  // boot.img's code, with core.img's LBA patched in at 0x5c; the partition table kept.
  assert.deepEqual(img.subarray(0, 0x5c), bootImg.subarray(0, 0x5c));
  assert.equal(img.readBigUInt64LE(0x5c), 2048n);
  assert.deepEqual(img.subarray(440, 512), before.subarray(440, 512));
  await run("sgdisk", ["-v", disk]);
  // core.img at the partition's first sector: diskboot's block list names the sectors after it.
  const core = img.subarray(2048 * 512, 2049 * 512);
  assert.equal(core.readBigUInt64LE(500), 2049n);
  assert.ok(core.readUInt16LE(508) > 0, "the block list counts core.img's sectors");
  assert.equal(core.readUInt16LE(510), 0x820);

  const efi = readFileSync(join(tg.efiDir, "EFI/BOOT/BOOTX64.EFI"));
  assert.equal(efi.subarray(0, 2).toString(), "MZ");
  assert.ok(efi.includes("search --no-floppy --label COS_STATE --set root"), "early config finds COS_STATE");
  assert.ok(efi.includes("configfile ($root)/grub2/grub.cfg"));
  assert.deepEqual(readFileSync(join(tg.stateDir, "grub2/grub.cfg")), readFileSync(GRUB_CFG));
  assert.ok(lines.some((l) => /GRUB \(BIOS\)/.test(l)) && lines.some((l) => /BOOTX64\.EFI/.test(l)));
});

test("a BIOS boot partition too small for core.img is refused and the disk is left as it was", async (t) => {
  const dir = await tempDir(t);
  const disk = await gptDisk(dir, 1);
  const before = readFileSync(disk);
  await assert.rejects(
    installGrubImages(target(dir, disk, 8)),
    /GRUB's core\.img needs \d+ sectors; the BIOS boot partition has 8/,
  );
  assert.ok(readFileSync(disk).equals(before), "nothing written to the disk");
});

test("without GRUB's files or its menu the installer says what to add", async (t) => {
  const dir = await tempDir(t);
  assert.throws(
    () => findGrubTools(join(dir, "no-root")),
    (e: Error & { hint?: string }) =>
      /GRUB's i386-pc modules are not on this system/.test(e.message) && /grub-pc-bin/.test(e.hint ?? ""),
  );
  await assert.rejects(loadGrubCfg(join(dir, "missing.cfg")), /the image has no .*missing\.cfg/);
  assert.equal(await loadGrubCfg(GRUB_CFG), readFileSync(GRUB_CFG, "utf8"));
});
