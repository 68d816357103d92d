/**
 * The partition layout of an installed Kairos node, as a declaration: which partitions, in
 * which order, with which label, filesystem and size, and what fills each. The installer
 * writes it to a block device (./device.ts); a disk-image builder can write the same
 * declaration into a file. Names, labels and default sizes are upstream kairos-agent's
 * (pkg/constants: EfiSize 64, OEMSize 64, RecoverySize 8192, StateSize 15360, BiosSize 1 MiB,
 * PersistentSize 0 = the rest of the disk) and its `install.partitions` / `extra-partitions`
 * keys. See docs/lifecycle.md.
 */
import { KairosError } from "../sys/index.js";

export type Filesystem = "ext4" | "ext2" | "vfat" | "xfs" | "none";

/** What the installer puts on a partition. */
export type PartitionRole = "bios" | "efi" | "oem" | "recovery" | "state" | "persistent" | "extra";

export interface PartitionSpec {
  /** upstream's partition name (bios, efi, oem, recovery, state, persistent) or the extra's name. */
  name: string;
  role: PartitionRole;
  /** Filesystem label (none for the BIOS boot partition). */
  label?: string;
  /** MiB; 0 = the rest of the disk (at most one partition). */
  sizeMiB: number;
  fs: Filesystem;
  /** sgdisk type code. */
  gptType: "EF02" | "EF00" | "8300";
  /** For docs and logs. */
  holds: string;
}

export interface DiskLayout {
  partitions: PartitionSpec[];
}

/** Upstream kairos-agent's defaults (MiB). */
export const DEFAULT_SIZES_MIB = {
  bios: 1,
  efi: 64,
  oem: 64,
  recovery: 8192,
  state: 15360,
  persistent: 0,
} as const;

/** The partition that takes "the rest" must get at least this much (MiB). */
export const MIN_REST_MIB = 64;
/** GPT: 1 MiB alignment before the first partition and the backup table at the end. */
export const GPT_OVERHEAD_MIB = 2;

const FILESYSTEMS: readonly Filesystem[] = ["ext4", "ext2", "vfat", "xfs", "none"];

interface PartitionInput {
  size?: unknown;
  fs?: unknown;
  label?: unknown;
  name?: unknown;
}

function sizeOf(v: unknown, where: string, dflt: number): number {
  if (v === undefined || v === null) return dflt;
  const n = typeof v === "string" && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 0) {
    throw new KairosError(
      `${where}.size must be a whole number of MiB (0 = the rest of the disk), got ${JSON.stringify(v)}`,
      "write e.g. `size: 2048` (MiB)",
    );
  }
  return n;
}

function fsOf(v: unknown, where: string, dflt: Filesystem): Filesystem {
  if (v === undefined || v === null || v === "") return dflt;
  if (typeof v !== "string" || !(FILESYSTEMS as readonly string[]).includes(v)) {
    throw new KairosError(
      `${where}.fs ${JSON.stringify(v)} is not supported`,
      `use one of ${FILESYSTEMS.join(", ")}`,
    );
  }
  return v as Filesystem;
}

function labelOf(v: unknown, where: string, dflt: string | undefined): string | undefined {
  if (v === undefined || v === null || v === "") return dflt;
  if (typeof v !== "string" || !/^[A-Za-z0-9_-]{1,16}$/.test(v)) {
    throw new KairosError(
      `${where}.label ${JSON.stringify(v)} is not a usable filesystem label`,
      "use 1-16 letters, digits, _ or -",
    );
  }
  return v;
}

/**
 * The layout for an `install:` config section (`partitions.{oem,recovery,state,persistent}`
 * and `extra-partitions`, sizes in MiB as upstream). Throws on a bad value, naming the key.
 */
export function layoutFromConfig(install: Record<string, unknown> = {}): DiskLayout {
  const parts = (install.partitions ?? {}) as Record<string, PartitionInput | undefined>;
  if (typeof parts !== "object" || Array.isArray(parts)) {
    throw new KairosError("install.partitions must be a map (oem, recovery, state, persistent)");
  }
  const fixed = (
    name: "oem" | "recovery" | "state" | "persistent",
    label: string,
    holds: string,
  ): PartitionSpec => {
    const p = parts[name] ?? {};
    const where = `install.partitions.${name}`;
    return {
      name,
      role: name,
      label: labelOf(p.label, where, label),
      sizeMiB: sizeOf(p.size, where, DEFAULT_SIZES_MIB[name]),
      fs: fsOf(p.fs, where, "ext4"),
      gptType: "8300",
      holds,
    };
  };
  const partitions: PartitionSpec[] = [
    {
      name: "bios",
      role: "bios",
      sizeMiB: DEFAULT_SIZES_MIB.bios,
      fs: "none",
      gptType: "EF02",
      holds: "GRUB's core image for BIOS boots",
    },
    {
      name: "efi",
      role: "efi",
      label: "COS_GRUB",
      sizeMiB: DEFAULT_SIZES_MIB.efi,
      fs: "vfat",
      gptType: "EF00",
      holds: "EFI/BOOT/BOOTX64.EFI",
    },
    fixed("oem", "COS_OEM", "the user's cloud-configs, grubenv, grubcustom, grubmenu"),
    fixed("recovery", "COS_RECOVERY", "/cOS/recovery.img and its kernel and initrd"),
    fixed("state", "COS_STATE", "/cOS/active.img, /cOS/passive.img, /grub2/grub.cfg"),
    fixed("persistent", "COS_PERSISTENT", "/usr/local and the persistent paths"),
  ];
  const extras = install["extra-partitions"] ?? [];
  if (!Array.isArray(extras)) throw new KairosError("install.extra-partitions must be a list");
  extras.forEach((e: PartitionInput, i) => {
    const where = `install.extra-partitions[${i}]`;
    const name = typeof e?.name === "string" && e.name ? e.name : `extra${i + 1}`;
    partitions.push({
      name,
      role: "extra",
      label: labelOf(e?.label, where, undefined),
      sizeMiB: sizeOf(e?.size, where, 0),
      fs: fsOf(e?.fs, where, "ext4"),
      gptType: "8300",
      holds: "user data (extra-partitions)",
    });
  });
  const rest = partitions.filter((p) => p.sizeMiB === 0);
  if (rest.length > 1) {
    throw new KairosError(
      `more than one partition takes the rest of the disk (size 0): ${rest.map((p) => p.name).join(", ")}`,
      "give all but one of them a size in MiB",
    );
  }
  const seen = new Set<string>();
  for (const p of partitions) {
    if (!p.label) continue;
    if (seen.has(p.label)) throw new KairosError(`two partitions have the label ${p.label}`);
    seen.add(p.label);
  }
  return { partitions };
}

/** The smallest disk (MiB) the layout fits on. */
export function minimumDiskMiB(layout: DiskLayout): number {
  let sum = GPT_OVERHEAD_MIB;
  for (const p of layout.partitions) sum += p.sizeMiB === 0 ? MIN_REST_MIB : p.sizeMiB;
  return sum;
}

/** One partition placed on a disk: 1-based number, start and size in MiB. */
export interface PlacedPartition extends PartitionSpec {
  number: number;
  startMiB: number;
  placedMiB: number;
}

/**
 * Place the layout on a disk of `diskBytes`: partitions in order from 1 MiB, the size-0
 * partition gets what the others leave. Refuses a disk that is too small, saying how large
 * it must be.
 */
export function placeLayout(layout: DiskLayout, diskBytes: number, device = "the disk"): PlacedPartition[] {
  const diskMiB = Math.floor(diskBytes / (1024 * 1024));
  const need = minimumDiskMiB(layout);
  if (diskMiB < need) {
    throw new KairosError(
      `${device} is too small: ${diskMiB} MiB, the layout needs at least ${need} MiB (${(need / 1024).toFixed(1)} GiB)`,
      "use a larger disk, or smaller install.partitions sizes (MiB) in the cloud-config",
    );
  }
  const fixedSum = layout.partitions.reduce((s, p) => s + p.sizeMiB, 0);
  const restMiB = diskMiB - GPT_OVERHEAD_MIB - fixedSum;
  let start = 1;
  return layout.partitions.map((p, i) => {
    const placedMiB = p.sizeMiB === 0 ? restMiB : p.sizeMiB;
    const placed = { ...p, number: i + 1, startMiB: start, placedMiB };
    start += placedMiB;
    return placed;
  });
}
