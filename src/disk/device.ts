/**
 * Writing a layout (./layout.ts) to a real block device on the node: a new GPT (our encoder,
 * ./gpt.ts, the one disk images use), then a filesystem on each partition. Everything here
 * destroys the device's contents; the installer calls it only after its checks passed.
 */
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { KairosError, run } from "../sys/index.js";
import { encodeGpt, GPT_TYPE, type GptTable, SECTOR } from "./gpt.js";
import { writePieces } from "./image-plan.js";
import type { PlacedPartition } from "./layout.js";

/** The device node of partition `n` of `disk` (/dev/vda → /dev/vda3, /dev/nvme0n1 → /dev/nvme0n1p3). */
export function partitionPath(disk: string, n: number): string {
  return /\d$/.test(disk) ? `${disk}p${n}` : `${disk}${n}`;
}

/** Size in bytes of a block device, from sysfs (`/sys/class/block/NAME/size` is in 512-byte sectors). */
export async function blockDeviceBytes(device: string, sys = "/sys"): Promise<number> {
  const name = basename(device);
  const text = await readFile(`${sys}/class/block/${name}/size`, "utf8").catch(() => undefined);
  if (text === undefined) throw new KairosError(`${device} is not a block device this system knows`);
  return Number(text.trim()) * 512;
}

/**
 * Logical sector size of a block device in bytes (`queue/logical_block_size` in sysfs); 512
 * when sysfs does not say (an image file).
 */
export async function logicalSectorBytes(device: string, sys = "/sys"): Promise<number> {
  const text = await readFile(
    `${sys}/class/block/${basename(device)}/queue/logical_block_size`,
    "utf8",
  ).catch(() => "512");
  return Number(text.trim()) || 512;
}

/**
 * Refuse a disk whose logical sectors are not 512 bytes: the GPT encoder (./gpt.ts) and GRUB's
 * BIOS boot sector (./bios-boot.ts) count in 512-byte sectors, and a table written that way on
 * a 4Kn disk would be read from the wrong offsets. Checked before anything is written.
 */
export async function requireSectorSize512(device: string, sys = "/sys"): Promise<void> {
  const bytes = await logicalSectorBytes(device, sys);
  if (bytes !== SECTOR) {
    throw new KairosError(
      `${device} has ${bytes}-byte logical sectors; the installer writes GPT and GRUB for 512-byte sectors only`,
      "install to a disk with 512-byte (or 512e) sectors",
    );
  }
}

const TYPE_GUIDS: Record<PlacedPartition["gptType"], string> = {
  EF02: GPT_TYPE.biosBoot,
  EF00: GPT_TYPE.efiSystem,
  "8300": GPT_TYPE.linux,
};

/**
 * The GPT of the placed partitions on a disk of `diskBytes`: the table sgdisk makes from the
 * same layout (numbers, sectors, type codes and names; test/integration/install-gpt.test.ts),
 * with fresh random GUIDs.
 */
export function layoutGpt(
  parts: readonly PlacedPartition[],
  diskBytes: number,
  guid: () => string = randomUUID,
): GptTable {
  return {
    diskGuid: guid(),
    sectors: Math.floor(diskBytes / SECTOR),
    partitions: [...parts]
      .sort((a, b) => a.number - b.number)
      .map((p) => ({
        name: p.name,
        type: TYPE_GUIDS[p.gptType],
        guid: guid(),
        firstLba: p.startMiB * 2048,
        lastLba: (p.startMiB + p.placedMiB) * 2048 - 1,
      })),
  };
}

/**
 * Write the layout's GPT (protective MBR, primary and backup tables) to `device` and flush it.
 * Why not sgdisk: it sleeps a second after each write "for the kernel", twice with --zap-all,
 * which under emulation made partitioning ~5 s of the install; the encoder is the one disk
 * images are built with (cross-checked with `sgdisk -v` in the tests).
 */
export async function writePartitionTable(
  device: string,
  parts: readonly PlacedPartition[],
  diskBytes: number,
): Promise<void> {
  const gpt = encodeGpt(layoutGpt(parts, diskBytes));
  await writePieces(
    device,
    [
      { offset: 0, data: gpt.head },
      { offset: gpt.tailOffset, data: gpt.tail },
    ],
    { sync: true },
  );
}

/** The mkfs command for one partition (undefined: the partition gets no filesystem). */
export function mkfsCommand(p: PlacedPartition, dev: string): [string, string[]] | undefined {
  const label = p.label ? [p.label] : [];
  switch (p.fs) {
    case "none":
      return undefined;
    case "vfat":
      return ["mkfs.vfat", ["-F", "32", ...(p.label ? ["-n", p.label] : []), dev]];
    case "xfs":
      return ["mkfs.xfs", ["-f", ...(p.label ? ["-L", p.label] : []), dev]];
    default:
      // GRUB 2.06 refuses ext4 with the metadata_csum_seed incompat feature; keep it off.
      return [
        `mkfs.${p.fs}`,
        [
          "-F",
          "-q",
          ...(p.fs === "ext4" ? ["-O", "^metadata_csum_seed"] : []),
          ...label.flatMap((l) => ["-L", l]),
          dev,
        ],
      ];
  }
}

async function waitFor(path: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!existsSync(path)) {
    if (Date.now() > end) throw new KairosError(`${path} did not appear after partitioning`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Partition `device` with `parts` and make their filesystems, all side by side (each mkfs
 * waits on its own writes). Returns the partition device nodes by partition name. Destroys
 * everything on the device.
 */
export async function writeLayout(
  device: string,
  parts: readonly PlacedPartition[],
  log: (line: string) => void = () => {},
  diskBytes?: number,
): Promise<Map<string, string>> {
  log(`partitioning ${device} (GPT, ${parts.length} partitions)`);
  // Old signatures (a filesystem or ISO on the whole disk, an old GPT's backup) must not
  // survive to confuse blkid.
  await run("wipefs", ["--all", "--force", device]).catch(() => undefined);
  await writePartitionTable(device, parts, diskBytes ?? (await blockDeviceBytes(device)));
  // Tell the kernel about the new table (util-linux's partx is on every image; parted's
  // partprobe is the fallback).
  await run("partx", ["-u", device]).catch(() => run("partprobe", [device]));
  await run("udevadm", ["settle", "--timeout=30"]).catch(() => undefined);
  const nodes = new Map<string, string>();
  const formats = parts.map(async (p) => {
    const dev = partitionPath(device, p.number);
    await waitFor(dev, 30_000);
    nodes.set(p.name, dev);
    const cmd = mkfsCommand(p, dev);
    if (!cmd) return;
    log(`formatting ${dev} ${p.fs}${p.label ? ` ${p.label}` : ""} (${p.placedMiB} MiB)`);
    await run(cmd[0], cmd[1]);
  });
  // Wait for every mkfs before reporting a failure: none may still write when the caller acts.
  const failed = (await Promise.allSettled(formats)).find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
  return nodes;
}
