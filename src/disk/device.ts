/**
 * Writing a layout (./layout.ts) to a real block device on the node: a new GPT with sgdisk,
 * then a filesystem on each partition. Everything here destroys the device's contents; the
 * installer calls it only after its checks passed.
 */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import { KairosError, run } from "../sys/index.js";
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

/** sgdisk arguments that create the placed partitions on an empty GPT. */
export function sgdiskArgs(device: string, parts: readonly PlacedPartition[]): string[] {
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
 * Partition `device` with `parts` and make their filesystems. Returns the partition device
 * nodes by partition name. Destroys everything on the device.
 */
export async function writeLayout(
  device: string,
  parts: readonly PlacedPartition[],
  log: (line: string) => void = () => {},
): Promise<Map<string, string>> {
  log(`partitioning ${device} (GPT, ${parts.length} partitions)`);
  await run("wipefs", ["--all", "--force", device]).catch(() => undefined);
  await run("sgdisk", sgdiskArgs(device, parts));
  // Tell the kernel about the new table (util-linux's partx is on every image; parted's
  // partprobe is the fallback).
  await run("partx", ["-u", device]).catch(() => run("partprobe", [device]));
  await run("udevadm", ["settle", "--timeout=30"]).catch(() => undefined);
  const nodes = new Map<string, string>();
  for (const p of parts) {
    const dev = partitionPath(device, p.number);
    await waitFor(dev, 30_000);
    nodes.set(p.name, dev);
    const cmd = mkfsCommand(p, dev);
    if (!cmd) continue;
    log(`formatting ${dev} ${p.fs}${p.label ? ` ${p.label}` : ""} (${p.placedMiB} MiB)`);
    await run(cmd[0], cmd[1]);
  }
  return nodes;
}
