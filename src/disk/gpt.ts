/**
 * A GUID partition table written by our own code (UEFI spec 2.10, section 5.3): protective
 * MBR, primary header and entry array at the start of the disk, backup entry array and header
 * at the end, CRC32s over both. Used on image files (the disk-image builder) and on block
 * devices (growing COS_PERSISTENT on first boot), so it only encodes and decodes bytes; the
 * callers do the I/O.
 */
import { createHash } from "node:crypto";
import { crc32 } from "node:zlib";
import { KairosError } from "../sys/index.js";

export const SECTOR = 512;
/** Entries in the array (the spec's minimum of 16 KiB: 128 entries of 128 bytes). */
export const GPT_ENTRIES = 128;
export const GPT_ENTRY_SIZE = 128;
/** Sectors the entry array takes. */
export const GPT_ARRAY_SECTORS = (GPT_ENTRIES * GPT_ENTRY_SIZE) / SECTOR;
/** First sector a partition may use: MBR + header + entry array. */
export const GPT_FIRST_USABLE = 2 + GPT_ARRAY_SECTORS;
/** Sectors the backup takes at the end of the disk: entry array + header. */
export const GPT_TAIL_SECTORS = GPT_ARRAY_SECTORS + 1;

/** Partition type GUIDs (sgdisk's codes in comments). */
export const GPT_TYPE = {
  /** EF02: GRUB's core image for BIOS boots. */
  biosBoot: "21686148-6449-6E6F-744E-656564454649",
  /** EF00: EFI system partition. */
  efiSystem: "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
  /** 8300: Linux filesystem. */
  linux: "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
} as const;

export interface GptPartition {
  /** Partition name (UTF-16, at most 36 code units); Kairos puts the label here. */
  name: string;
  type: string;
  guid: string;
  firstLba: number;
  /** Inclusive. */
  lastLba: number;
  /** Attribute bits (default 0). */
  attributes?: bigint;
}

export interface GptTable {
  diskGuid: string;
  /** Size of the whole disk in sectors. */
  sectors: number;
  /** In partition-number order: entry i is partition i+1. */
  partitions: GptPartition[];
}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A GUID's on-disk bytes: the first three fields little-endian, the rest as written. */
export function guidToBytes(guid: string): Buffer {
  if (!GUID_RE.test(guid))
    throw new KairosError(`'${guid}' is not a GUID`, "use the form 01234567-89ab-cdef-0123-456789abcdef");
  const hex = guid.replace(/-/g, "");
  const b = Buffer.from(hex, "hex");
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  return b;
}

/** The GUID of 16 on-disk bytes, upper case as sgdisk prints it. */
export function bytesToGuid(bytes: Uint8Array): string {
  const b = Buffer.from(bytes.subarray(0, 16));
  b.subarray(0, 4).reverse();
  b.subarray(4, 6).reverse();
  b.subarray(6, 8).reverse();
  const h = b.toString("hex").toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/**
 * A GUID derived from `seed` (a version-4-shaped GUID from the seed's sha256), so that disks
 * built from the same inputs and SOURCE_DATE_EPOCH carry the same GUIDs, as systemd-repart does.
 */
export function derivedGuid(seed: string): string {
  const b = createHash("sha256").update(seed).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString("hex").toUpperCase();
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Last sector a partition may use on a disk of `sectors`. */
export function lastUsableLba(sectors: number): number {
  return sectors - GPT_TAIL_SECTORS - 1;
}

function checkTable(t: GptTable): void {
  if (!Number.isSafeInteger(t.sectors) || t.sectors < GPT_FIRST_USABLE + GPT_TAIL_SECTORS + 1) {
    throw new KairosError(`a disk of ${t.sectors} sectors cannot hold a GPT`, "make the disk larger");
  }
  if (t.partitions.length > GPT_ENTRIES) {
    throw new KairosError(
      `${t.partitions.length} partitions do not fit a GPT of ${GPT_ENTRIES} entries`,
      "use fewer partitions",
    );
  }
  const last = lastUsableLba(t.sectors);
  const sorted = [...t.partitions].sort((a, b) => a.firstLba - b.firstLba);
  let prevEnd = GPT_FIRST_USABLE - 1;
  let prevName = "the partition table";
  for (const p of sorted) {
    if (p.name.length > 36) {
      throw new KairosError(`partition name '${p.name}' is longer than 36 characters`, "use a shorter name");
    }
    if (!Number.isSafeInteger(p.firstLba) || !Number.isSafeInteger(p.lastLba) || p.lastLba < p.firstLba) {
      throw new KairosError(
        `partition ${p.name}: sectors ${p.firstLba}-${p.lastLba} are not a range`,
        "check the layout",
      );
    }
    if (p.firstLba <= prevEnd) {
      throw new KairosError(`partition ${p.name} overlaps ${prevName}`, "check the layout's sizes");
    }
    if (p.lastLba > last) {
      throw new KairosError(
        `partition ${p.name} ends at sector ${p.lastLba}, past the last usable sector ${last}`,
        "make the disk larger or the partitions smaller",
      );
    }
    prevEnd = p.lastLba;
    prevName = p.name;
  }
}

function encodeEntries(parts: readonly GptPartition[]): Buffer {
  const arr = Buffer.alloc(GPT_ENTRIES * GPT_ENTRY_SIZE);
  parts.forEach((p, i) => {
    const e = arr.subarray(i * GPT_ENTRY_SIZE, (i + 1) * GPT_ENTRY_SIZE);
    guidToBytes(p.type).copy(e, 0);
    guidToBytes(p.guid).copy(e, 16);
    e.writeBigUInt64LE(BigInt(p.firstLba), 32);
    e.writeBigUInt64LE(BigInt(p.lastLba), 40);
    e.writeBigUInt64LE(p.attributes ?? 0n, 48);
    e.write(p.name, 56, 72, "utf16le");
  });
  return arr;
}

function encodeHeader(
  t: GptTable,
  current: number,
  backup: number,
  arrayLba: number,
  arrayCrc: number,
): Buffer {
  const h = Buffer.alloc(SECTOR);
  h.write("EFI PART", 0, "latin1");
  h.writeUInt32LE(0x00010000, 8);
  h.writeUInt32LE(92, 12);
  h.writeBigUInt64LE(BigInt(current), 24);
  h.writeBigUInt64LE(BigInt(backup), 32);
  h.writeBigUInt64LE(BigInt(GPT_FIRST_USABLE), 40);
  h.writeBigUInt64LE(BigInt(lastUsableLba(t.sectors)), 48);
  guidToBytes(t.diskGuid).copy(h, 56);
  h.writeBigUInt64LE(BigInt(arrayLba), 72);
  h.writeUInt32LE(GPT_ENTRIES, 80);
  h.writeUInt32LE(GPT_ENTRY_SIZE, 84);
  h.writeUInt32LE(arrayCrc, 88);
  h.writeUInt32LE(crc32(h.subarray(0, 92)), 16);
  return h;
}

/** The protective MBR: one partition of type 0xEE covering the disk (up to 2 TiB), boot code zero. */
export function protectiveMbr(sectors: number): Buffer {
  const m = Buffer.alloc(SECTOR);
  const e = m.subarray(0x1be, 0x1ce);
  e[0] = 0x00;
  e.writeUIntLE(0x000200, 1, 3); // CHS of LBA 1
  e[4] = 0xee;
  e.writeUIntLE(0xffffff, 5, 3);
  e.writeUInt32LE(1, 8);
  e.writeUInt32LE(Math.min(sectors - 1, 0xffffffff), 12);
  m[510] = 0x55;
  m[511] = 0xaa;
  return m;
}

export interface EncodedGpt {
  /** Sectors 0 .. GPT_FIRST_USABLE-1: protective MBR, primary header, entry array. */
  head: Buffer;
  /** The last GPT_TAIL_SECTORS sectors: backup entry array, backup header. */
  tail: Buffer;
  /** Byte offset of `tail` on the disk. */
  tailOffset: number;
}

/** Encode `t` (checked first: partitions inside the usable area, no overlaps, names that fit). */
export function encodeGpt(t: GptTable): EncodedGpt {
  checkTable(t);
  const entries = encodeEntries(t.partitions);
  const arrayCrc = crc32(entries);
  const backupLba = t.sectors - 1;
  const backupArray = t.sectors - GPT_TAIL_SECTORS;
  const head = Buffer.concat([protectiveMbr(t.sectors), encodeHeader(t, 1, backupLba, 2, arrayCrc), entries]);
  const tail = Buffer.concat([entries, encodeHeader(t, backupLba, 1, backupArray, arrayCrc)]);
  return { head, tail, tailOffset: backupArray * SECTOR };
}

/**
 * Decode the primary GPT from the first GPT_FIRST_USABLE sectors of a disk of `sectors` (the
 * device's size now, which may be larger than when the table was written). Header and array
 * CRCs are checked. Unused entries are dropped; partition numbers are kept by position.
 */
export function decodeGpt(head: Uint8Array, sectors: number): GptTable {
  const buf = Buffer.from(head.buffer, head.byteOffset, head.byteLength);
  if (buf.length < GPT_FIRST_USABLE * SECTOR)
    throw new KairosError("too few bytes for a GPT", "read the first 34 sectors");
  const h = buf.subarray(SECTOR, 2 * SECTOR);
  if (h.toString("latin1", 0, 8) !== "EFI PART")
    throw new KairosError("no GPT header at sector 1", "is this a GPT disk?");
  const size = h.readUInt32LE(12);
  const crc = h.readUInt32LE(16);
  const copy = Buffer.from(h.subarray(0, size));
  copy.writeUInt32LE(0, 16);
  if (crc32(copy) !== crc)
    throw new KairosError(
      "the primary GPT header's CRC32 does not match",
      "the table is damaged; repair it with sgdisk",
    );
  const arrayLba = Number(h.readBigUInt64LE(72));
  const count = h.readUInt32LE(80);
  const esize = h.readUInt32LE(84);
  if (arrayLba !== 2 || count * esize > GPT_ARRAY_SECTORS * SECTOR || esize < 128) {
    throw new KairosError(
      `unsupported GPT entry array (LBA ${arrayLba}, ${count} × ${esize} bytes)`,
      "only 128-byte entries from LBA 2 are supported",
    );
  }
  const arr = buf.subarray(2 * SECTOR, 2 * SECTOR + count * esize);
  if (crc32(arr) !== h.readUInt32LE(88))
    throw new KairosError(
      "the GPT entry array's CRC32 does not match",
      "the table is damaged; repair it with sgdisk",
    );
  const numbered: (GptPartition | undefined)[] = [];
  for (let i = 0; i < count; i++) {
    const e = arr.subarray(i * esize, i * esize + esize);
    if (e.subarray(0, 16).every((x) => x === 0)) {
      numbered.push(undefined);
      continue;
    }
    const nameRaw = e.subarray(56, 128).toString("utf16le");
    const nul = nameRaw.indexOf("\0");
    numbered.push({
      type: bytesToGuid(e.subarray(0, 16)),
      guid: bytesToGuid(e.subarray(16, 32)),
      firstLba: Number(e.readBigUInt64LE(32)),
      lastLba: Number(e.readBigUInt64LE(40)),
      attributes: e.readBigUInt64LE(48),
      name: nul < 0 ? nameRaw : nameRaw.slice(0, nul),
    });
  }
  while (numbered.length && numbered[numbered.length - 1] === undefined) numbered.pop();
  if (numbered.includes(undefined)) {
    throw new KairosError(
      "the GPT has unused entries between used ones",
      "only tables with consecutive partition numbers are supported",
    );
  }
  return {
    diskGuid: bytesToGuid(h.subarray(56, 72)),
    sectors,
    partitions: numbered as GptPartition[],
  };
}
