/**
 * GRUB for BIOS on a GPT disk without grub-bios-setup (which cannot target a file): GRUB's
 * boot.img goes into the MBR's boot-code area and core.img into the BIOS boot (EF02)
 * partition, with the two pointers grub-bios-setup would patch (grub-core/boot/i386/pc/boot.S
 * and diskboot.S of GRUB 2.06; util/setup.c):
 *
 * - boot.img: the 64-bit LBA of core.img's first sector at 0x5c (GRUB_BOOT_MACHINE_KERNEL_SECTOR),
 *   boot drive 0xff ("the drive the BIOS says") at 0x64, and for hard disks the two-byte jump at
 *   0x66 (GRUB_BOOT_MACHINE_DRIVE_CHECK) turned into NOPs, as setup does for non-floppies.
 *   Only the first 440 bytes are replaced: the disk signature and the protective MBR's
 *   partition table stay.
 * - core.img's first sector is diskboot.img, which loads the rest from a block list that grows
 *   down from offset 500 (12 bytes each: u64 start LBA, u16 sector count, u16 load segment);
 *   a zero count ends it. core.img sits in one contiguous run, so one entry plus a terminator.
 */
import { KairosError } from "../sys/index.js";
import { SECTOR } from "./gpt.js";

const KERNEL_SECTOR = 0x5c;
const BOOT_DRIVE = 0x64;
const DRIVE_CHECK = 0x66;
/** End of the boot code in the MBR; from here on: disk signature, partition table, 0x55aa. */
export const MBR_CODE_END = 440;
const BLOCKLIST = 500;
const BLOCKLIST_ENTRY = 12;
/** GRUB_BOOT_I386_PC_KERNEL_SEG (0x800) + 0x20: where diskboot loads the rest of core.img. */
const CORE_SEGMENT = 0x820;

/**
 * The MBR with boot.img's code in its first 440 bytes, pointing at core.img at `coreLba`.
 * `mbr` is the disk's current sector 0 (the protective MBR), kept from byte 440 on.
 */
export function patchBootImg(bootImg: Uint8Array, mbr: Uint8Array, coreLba: number): Buffer {
  if (bootImg.length !== SECTOR)
    throw new KairosError(`boot.img is ${bootImg.length} bytes, not 512`, "use GRUB's i386-pc boot.img");
  if (mbr.length !== SECTOR || mbr[510] !== 0x55 || mbr[511] !== 0xaa) {
    throw new KairosError("sector 0 holds no MBR (no 0x55aa signature)", "write the partition table first");
  }
  const out = Buffer.from(mbr);
  Buffer.from(bootImg).copy(out, 0, 0, MBR_CODE_END);
  out.writeBigUInt64LE(BigInt(coreLba), KERNEL_SECTOR);
  out[BOOT_DRIVE] = 0xff;
  out[DRIVE_CHECK] = 0x90;
  out[DRIVE_CHECK + 1] = 0x90;
  return out;
}

/**
 * core.img, padded to whole sectors, with diskboot's block list pointing at its own sectors
 * 1…n-1 placed at `coreLba` and following. Refuses a core.img that does not fit `maxSectors`
 * (the BIOS boot partition).
 */
export function patchCoreImg(coreImg: Uint8Array, coreLba: number, maxSectors: number): Buffer {
  const sectors = Math.ceil(coreImg.length / SECTOR);
  if (sectors < 2)
    throw new KairosError(
      `core.img is ${coreImg.length} bytes: too small to be GRUB's`,
      "build it with grub-mkimage -O i386-pc",
    );
  if (sectors > maxSectors) {
    throw new KairosError(
      `GRUB's core.img needs ${sectors} sectors; the BIOS boot partition has ${maxSectors}`,
      "build it with fewer modules or make the BIOS boot partition larger",
    );
  }
  if (sectors - 1 > 0xffff)
    throw new KairosError("core.img is too large for one block-list entry", "use fewer modules");
  const out = Buffer.alloc(sectors * SECTOR);
  Buffer.from(coreImg).copy(out);
  const seg = out.readUInt16LE(BLOCKLIST + 10);
  if (seg !== CORE_SEGMENT) {
    throw new KairosError(
      `core.img's first sector does not look like GRUB's diskboot.img (load segment ${seg.toString(16)} at offset 510, expected 820)`,
      "build it with grub-mkimage -O i386-pc",
    );
  }
  out.writeBigUInt64LE(BigInt(coreLba + 1), BLOCKLIST);
  out.writeUInt16LE(sectors - 1, BLOCKLIST + 8);
  out.writeUInt16LE(CORE_SEGMENT, BLOCKLIST + 10);
  out.fill(0, BLOCKLIST - BLOCKLIST_ENTRY, BLOCKLIST);
  return out;
}

/** Where the pieces go, as (byte offset, bytes) writes for the caller to apply to the disk. */
export function biosBootWrites(p: {
  bootImg: Uint8Array;
  coreImg: Uint8Array;
  /** The disk's sector 0 as it is now (the protective MBR). */
  mbr: Uint8Array;
  /** The BIOS boot partition's first sector and size in sectors. */
  partitionLba: number;
  partitionSectors: number;
}): Array<{ offset: number; data: Buffer }> {
  return [
    { offset: 0, data: patchBootImg(p.bootImg, p.mbr, p.partitionLba) },
    { offset: p.partitionLba * SECTOR, data: patchCoreImg(p.coreImg, p.partitionLba, p.partitionSectors) },
  ];
}
