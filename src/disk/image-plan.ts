/**
 * Placing a partition layout on a disk image file: sizes → 1 MiB-aligned sector ranges →
 * a GPT, written to a sparse file together with any raw pieces (GRUB's boot sectors). The
 * layout itself (labels, sizes, filesystems) is the caller's; this module only does the
 * arithmetic and the I/O, so the installer and the disk-image builder agree by construction.
 */
import { open } from "node:fs/promises";
import { KairosError } from "../sys/index.js";
import {
  derivedGuid,
  encodeGpt,
  GPT_FIRST_USABLE,
  GPT_TAIL_SECTORS,
  type GptPartition,
  type GptTable,
  lastUsableLba,
  SECTOR,
} from "./gpt.js";

const MIB = 1024 * 1024;
/** Partitions start on 1 MiB boundaries (what every partitioning tool does today). */
export const ALIGN_SECTORS = MIB / SECTOR;

export interface PartitionRequest {
  /** GPT partition name; Kairos uses the filesystem label (the BIOS boot partition has its own name). */
  name: string;
  type: string;
  /** Bytes (rounded up to whole MiB); undefined: the rest of the disk (one partition at most, the last). */
  size?: number;
  /** For the rest-of-disk partition: the least it may get. */
  minSize?: number;
}

export interface PlannedPartition extends GptPartition {
  /** Partition number, from 1. */
  number: number;
  /** Byte offset and size on the disk. */
  offset: number;
  size: number;
}

export interface DiskPlan extends GptTable {
  partitions: PlannedPartition[];
  /** Bytes. */
  size: number;
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/**
 * Lay `requests` out in order on a disk of `diskSize` bytes (default: just large enough), each
 * 1 MiB-aligned. GUIDs derive from `seed` (the build's epoch and inputs), so the same inputs
 * give the same table. Refuses a disk that is too small, saying how large it must be.
 */
export function planDisk(
  requests: readonly PartitionRequest[],
  opts: { diskSize?: number; seed: string },
): DiskPlan {
  const rest = requests.filter((r) => r.size === undefined);
  if (rest.length > 1 || (rest.length === 1 && requests[requests.length - 1]!.size !== undefined)) {
    throw new KairosError(
      "only the last partition may take the rest of the disk",
      "give the other partitions a size",
    );
  }
  let lba = roundUp(GPT_FIRST_USABLE, ALIGN_SECTORS);
  const fixed: Array<{ r: PartitionRequest; first: number; sectors: number }> = [];
  for (const r of requests) {
    const bytes = r.size ?? r.minSize ?? MIB;
    if (!Number.isSafeInteger(bytes) || bytes <= 0) {
      throw new KairosError(
        `partition ${r.name}: size ${bytes} is not a positive number of bytes`,
        "check the layout's sizes",
      );
    }
    const sectors = roundUp(bytes, MIB) / SECTOR;
    fixed.push({ r, first: lba, sectors });
    lba += sectors;
  }
  // The backup table needs GPT_TAIL_SECTORS after the last partition; keep the disk whole MiB.
  const needed = roundUp((lba + GPT_TAIL_SECTORS) * SECTOR, MIB);
  const size = opts.diskSize ?? needed;
  if (!Number.isSafeInteger(size) || size % SECTOR !== 0) {
    throw new KairosError(
      `disk size ${size} is not a whole number of 512-byte sectors`,
      "give the size in MiB",
    );
  }
  if (size < needed) {
    throw new KairosError(
      `a disk of ${(size / MIB).toFixed(0)} MiB is too small for this layout: it needs at least ${needed / MIB} MiB`,
      `give a size of at least ${needed / MIB} MiB`,
    );
  }
  const sectors = size / SECTOR;
  const partitions = fixed.map(({ r, first, sectors: n }, i): PlannedPartition => {
    // The rest-of-disk partition ends at the last usable sector, rounded down to whole MiB so
    // that its filesystem can be a whole number of 4 KiB blocks.
    const last =
      r.size === undefined
        ? first + Math.floor((lastUsableLba(sectors) + 1 - first) / ALIGN_SECTORS) * ALIGN_SECTORS - 1
        : first + n - 1;
    return {
      number: i + 1,
      name: r.name,
      type: r.type,
      guid: derivedGuid(`${opts.seed}/partition/${i + 1}/${r.name}`),
      firstLba: first,
      lastLba: last,
      offset: first * SECTOR,
      size: (last - first + 1) * SECTOR,
    };
  });
  return { diskGuid: derivedGuid(`${opts.seed}/disk`), sectors, partitions, size };
}

/** The plan's partition named `name` (refuses a name the layout does not have). */
export function partitionNamed(plan: DiskPlan, name: string): PlannedPartition {
  const p = plan.partitions.find((x) => x.name === name);
  if (!p)
    throw new KairosError(
      `the layout has no partition ${name}`,
      `partitions: ${plan.partitions.map((x) => x.name).join(", ")}`,
    );
  return p;
}

/**
 * Create `file` as a sparse file of the plan's size holding only the GPT (both copies):
 * every other byte reads as zero and takes no space until a filesystem is written there.
 */
export async function createDiskFile(file: string, plan: DiskPlan): Promise<void> {
  const gpt = encodeGpt(plan);
  const fh = await open(file, "w");
  try {
    await fh.truncate(plan.size);
    await writeAll(fh, gpt.head, 0);
    await writeAll(fh, gpt.tail, gpt.tailOffset);
  } finally {
    await fh.close();
  }
}

/** Write byte pieces at their offsets in `file` (e.g. GRUB's boot sectors); `sync`: fsync before closing. */
export async function writePieces(
  file: string,
  pieces: ReadonlyArray<{ offset: number; data: Uint8Array }>,
  opts: { sync?: boolean } = {},
): Promise<void> {
  const fh = await open(file, "r+");
  try {
    for (const p of pieces) await writeAll(fh, p.data, p.offset);
    if (opts.sync) await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Read `length` bytes at `offset` of `file`. */
export async function readPiece(file: string, offset: number, length: number): Promise<Buffer> {
  const fh = await open(file, "r");
  try {
    const b = Buffer.alloc(length);
    const { bytesRead } = await fh.read(b, 0, length, offset);
    if (bytesRead !== length)
      throw new KairosError(`${file} is shorter than ${offset + length} bytes`, "is it a whole disk image?");
    return b;
  } finally {
    await fh.close();
  }
}

async function writeAll(
  fh: Awaited<ReturnType<typeof open>>,
  data: Uint8Array,
  offset: number,
): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await fh.write(data, done, data.length - done, offset + done);
    done += bytesWritten;
  }
}
