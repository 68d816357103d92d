/**
 * The installer writes its GPT with our encoder (src/disk/device.ts writePartitionTable), not
 * sgdisk. Cross-check: the same layouts given to sgdisk itself, as the installer used to do,
 * must list the same partitions (numbers, first and last sectors, type codes, names), and
 * `sgdisk -v` must find no problem in ours. Also: a partition past the disk's end is refused
 * before anything is written.
 */
import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import {
  layoutFromConfig,
  layoutGpt,
  type PlacedPartition,
  placeLayout,
  readPiece,
  requireSectorSize512,
  writePartitionTable,
} from "../../src/disk/index.js";
import { run } from "../../src/sys/index.js";
import { tempDir } from "../helpers/tmp.js";

const GiB = 1024 ** 3;

/** What the installer asked sgdisk for before (the reference). */
function sgdiskArgs(device: string, parts: readonly PlacedPartition[]): string[] {
  const args = ["--zap-all", "--clear"];
  for (const p of parts) {
    args.push(
      `--new=${p.number}:${p.startMiB}M:+${p.placedMiB}M`,
      `--typecode=${p.number}:${p.gptType}`,
      `--change-name=${p.number}:${p.name}`,
    );
  }
  args.push(device);
  return args;
}

/** sgdisk -p's partition lines: number, start, end, code, name (GUIDs differ by design). */
async function listing(disk: string): Promise<string[]> {
  const out = (await run("sgdisk", ["-p", disk])).stdout;
  return out
    .split("\n")
    .filter((l) => /^\s+\d+\s+\d+\s+\d+/.test(l))
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return [f[0], f[1], f[2], f[5], f.slice(6).join(" ")].join(" ");
    });
}

const LAYOUTS: Array<[string, Record<string, unknown>, number]> = [
  ["the default layout on 32 GiB", {}, 32 * GiB],
  [
    "sizes from install.partitions and two extra partitions",
    {
      partitions: {
        oem: { size: 128 },
        recovery: { size: 4096 },
        state: { size: 9000 },
        persistent: { size: 2048 },
      },
      "extra-partitions": [
        { name: "data", size: 1024, fs: "ext4", label: "DATA" },
        { name: "scratch", size: 0, fs: "ext4", label: "SCRATCH" },
      ],
    },
    40 * GiB + 12345 * 512,
  ],
];

for (const [what, install, bytes] of LAYOUTS) {
  test(`GPT for ${what}: the table sgdisk makes, and sgdisk -v finds no problem`, async (t) => {
    const dir = await tempDir(t);
    const parts = placeLayout(layoutFromConfig(install), bytes);
    const ours = join(dir, "ours.raw");
    const theirs = join(dir, "sgdisk.raw");
    await run("truncate", ["-s", String(bytes), ours]);
    await run("truncate", ["-s", String(bytes), theirs]);
    await writePartitionTable(ours, parts, bytes);
    await run("sgdisk", sgdiskArgs(theirs, parts));
    const v = await run("sgdisk", ["-v", ours]);
    assert.match(v.stdout, /No problems found/);
    assert.deepEqual(await listing(ours), await listing(theirs));
    assert.equal((await listing(ours)).length, parts.length);
    // The protective MBR spans the disk as sgdisk's does.
    assert.deepEqual(await readPiece(ours, 446, 66), await readPiece(theirs, 446, 66));
  });
}

test("each install gets its own disk and partition GUIDs", () => {
  const parts = placeLayout(layoutFromConfig({}), 32 * GiB);
  const a = layoutGpt(parts, 32 * GiB);
  const b = layoutGpt(parts, 32 * GiB);
  const guids = [
    a.diskGuid,
    ...a.partitions.map((p) => p.guid),
    b.diskGuid,
    ...b.partitions.map((p) => p.guid),
  ];
  assert.equal(new Set(guids).size, guids.length);
});

test("a table that does not fit the disk is refused and nothing is written", async (t) => {
  const dir = await tempDir(t);
  const parts = placeLayout(layoutFromConfig({}), 32 * GiB);
  const disk = join(dir, "small.raw");
  await run("truncate", ["-s", String(16 * GiB), disk]);
  await assert.rejects(
    writePartitionTable(disk, parts, 16 * GiB),
    /ends at sector \d+, past the last usable sector/,
  );
  const head = await readPiece(disk, 0, 64 * 1024);
  assert.ok(
    head.every((b) => b === 0),
    "the disk is untouched",
  );
});

test("a disk with 4096-byte logical sectors is refused before anything is written", async (t) => {
  const sys = await tempDir(t);
  for (const [name, bytes] of [
    ["vda", "512"],
    ["nvme0n1", "4096"],
  ] as const) {
    mkdirSync(join(sys, "class/block", name, "queue"), { recursive: true });
    writeFileSync(join(sys, "class/block", name, "queue/logical_block_size"), `${bytes}\n`);
  }
  await requireSectorSize512("/dev/vda", sys);
  await assert.rejects(
    requireSectorSize512("/dev/nvme0n1", sys),
    /\/dev\/nvme0n1 has 4096-byte logical sectors; the installer writes GPT and GRUB for 512-byte sectors only/,
  );
});
