import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { crc32 } from "node:zlib";
import {
  bytesToGuid,
  decodeGpt,
  derivedGuid,
  encodeGpt,
  GPT_TYPE,
  guidToBytes,
  patchBootImg,
  patchCoreImg,
  planDisk,
  protectiveMbr,
  SECTOR,
} from "../../../src/disk/index.js";

const MIB = 1024 * 1024;

function layout() {
  return [
    { name: "BIOS boot", type: GPT_TYPE.biosBoot, size: MIB },
    { name: "COS_GRUB", type: GPT_TYPE.efiSystem, size: 64 * MIB },
    { name: "COS_OEM", type: GPT_TYPE.linux, size: 64 * MIB },
    { name: "COS_PERSISTENT", type: GPT_TYPE.linux, minSize: 32 * MIB },
  ];
}

describe("GPT encoding", () => {
  it("GUIDs round-trip in the mixed-endian on-disk form", () => {
    const g = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
    const b = guidToBytes(g);
    assert.equal(b.toString("hex"), "28732ac11ff8d211ba4b00a0c93ec93b");
    assert.equal(bytesToGuid(b), g);
    assert.throws(() => guidToBytes("not-a-guid"), /not a GUID/);
  });

  it("derived GUIDs are stable, differ by seed and look like version 4", () => {
    assert.equal(derivedGuid("a"), derivedGuid("a"));
    assert.notEqual(derivedGuid("a"), derivedGuid("b"));
    assert.match(derivedGuid("a"), /^[0-9A-F]{8}-[0-9A-F]{4}-4[0-9A-F]{3}-[89AB][0-9A-F]{3}-[0-9A-F]{12}$/);
  });

  it("plans 1 MiB-aligned partitions, the last one taking the rest", () => {
    const plan = planDisk(layout(), { diskSize: 512 * MIB, seed: "s" });
    assert.deepEqual(
      plan.partitions.map((p) => [p.number, p.firstLba, p.lastLba]),
      [
        [1, 2048, 4095],
        [2, 4096, 135167],
        [3, 135168, 266239],
        [4, 266240, 1046527],
      ],
    );
    assert.equal(plan.partitions[3]!.size % MIB, 0);
    // Without a size: just large enough for the minimum.
    const small = planDisk(layout(), { seed: "s" });
    assert.equal(small.size, (1 + 1 + 64 + 64 + 32 + 1) * MIB);
  });

  it("refuses a disk too small for the layout, saying how large it must be", () => {
    assert.throws(() => planDisk(layout(), { diskSize: 100 * MIB, seed: "s" }), /needs at least 163 MiB/);
    assert.throws(
      () =>
        planDisk(
          [
            { name: "a", type: GPT_TYPE.linux },
            { name: "b", type: GPT_TYPE.linux, size: MIB },
          ],
          { seed: "s" },
        ),
      /only the last partition/,
    );
  });

  it("writes headers whose CRCs check and decodes its own table", () => {
    const plan = planDisk(layout(), { diskSize: 256 * MIB, seed: "s" });
    const gpt = encodeGpt(plan);
    assert.equal(gpt.head.length, 34 * SECTOR);
    assert.equal(gpt.tail.length, 33 * SECTOR);
    assert.equal(gpt.tailOffset, 256 * MIB - 33 * SECTOR);
    const hdr = Buffer.from(gpt.head.subarray(SECTOR, 2 * SECTOR));
    const crc = hdr.readUInt32LE(16);
    hdr.writeUInt32LE(0, 16);
    assert.equal(crc32(hdr.subarray(0, 92)), crc);
    assert.equal(hdr.readUInt32LE(88), crc32(gpt.head.subarray(2 * SECTOR)));
    // The backup header points back at the primary and at its own array.
    const bh = gpt.tail.subarray(32 * SECTOR);
    assert.equal(bh.readBigUInt64LE(24), BigInt(plan.sectors - 1));
    assert.equal(bh.readBigUInt64LE(32), 1n);
    assert.equal(bh.readBigUInt64LE(72), BigInt(plan.sectors - 33));
    const back = decodeGpt(gpt.head, plan.sectors);
    assert.equal(back.diskGuid, plan.diskGuid);
    assert.deepEqual(
      back.partitions.map((p) => [p.name, p.type, p.guid, p.firstLba, p.lastLba]),
      plan.partitions.map((p) => [p.name, p.type, p.guid, p.firstLba, p.lastLba]),
    );
  });

  it("refuses a damaged table", () => {
    const plan = planDisk(layout(), { seed: "s" });
    const head = Buffer.from(encodeGpt(plan).head);
    head.writeUInt8(head.readUInt8(2 * SECTOR + 60) ^ 1, 2 * SECTOR + 60); // inside the entry array
    assert.throws(() => decodeGpt(head, plan.sectors), /entry array's CRC32/);
    head.writeUInt8(head.readUInt8(2 * SECTOR + 60) ^ 1, 2 * SECTOR + 60);
    head.writeUInt8(head.readUInt8(SECTOR + 40) ^ 1, SECTOR + 40); // inside the header
    assert.throws(() => decodeGpt(head, plan.sectors), /header's CRC32/);
    assert.throws(() => decodeGpt(Buffer.alloc(34 * SECTOR), plan.sectors), /no GPT header/);
  });

  it("refuses overlapping partitions and names that do not fit", () => {
    const base = { diskGuid: derivedGuid("d"), sectors: 100000 };
    const p = (name: string, first: number, last: number) => ({
      name,
      type: GPT_TYPE.linux,
      guid: derivedGuid(name),
      firstLba: first,
      lastLba: last,
    });
    assert.throws(
      () => encodeGpt({ ...base, partitions: [p("a", 2048, 5000), p("b", 4000, 6000)] }),
      /overlaps a/,
    );
    assert.throws(
      () => encodeGpt({ ...base, partitions: [p("a", 20, 5000)] }),
      /overlaps the partition table/,
    );
    assert.throws(
      () => encodeGpt({ ...base, partitions: [p("a", 2048, 99990)] }),
      /past the last usable sector/,
    );
    assert.throws(
      () => encodeGpt({ ...base, partitions: [p("x".repeat(37), 2048, 4000)] }),
      /longer than 36/,
    );
  });
});

describe("GRUB BIOS boot sectors", () => {
  const bootImg = readFileSync("/usr/lib/grub/i386-pc/boot.img");
  const diskboot = readFileSync("/usr/lib/grub/i386-pc/diskboot.img");

  it("puts boot.img's code before byte 440 and keeps the partition table", () => {
    const mbr = protectiveMbr(1 << 20);
    const out = patchBootImg(bootImg, mbr, 2048);
    assert.deepEqual(out.subarray(440), mbr.subarray(440));
    assert.equal(out.readBigUInt64LE(0x5c), 2048n);
    assert.equal(out[0x64], 0xff);
    assert.deepEqual([...out.subarray(0x66, 0x68)], [0x90, 0x90]);
    assert.deepEqual(out.subarray(0, 0x5c), bootImg.subarray(0, 0x5c));
    assert.throws(() => patchBootImg(bootImg, Buffer.alloc(512), 2048), /no MBR/);
  });

  it("points diskboot's block list at the rest of core.img", () => {
    const core = Buffer.concat([diskboot, Buffer.alloc(10_000, 7)]);
    const out = patchCoreImg(core, 2048, 2048);
    assert.equal(out.length, 21 * SECTOR);
    assert.equal(out.readBigUInt64LE(500), 2049n);
    assert.equal(out.readUInt16LE(508), 20);
    assert.equal(out.readUInt16LE(510), 0x820);
    assert.ok(
      out.subarray(488, 500).every((b) => b === 0),
      "terminator entry",
    );
    assert.deepEqual(out.subarray(512, 512 + 10_000), core.subarray(512));
    assert.throws(() => patchCoreImg(core, 2048, 10), /needs 21 sectors; the BIOS boot partition has 10/);
    assert.throws(() => patchCoreImg(Buffer.alloc(4096), 2048, 2048), /does not look like GRUB's diskboot/);
  });
});
