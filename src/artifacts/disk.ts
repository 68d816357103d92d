/**
 * `kairos build disk`: a disk image that boots straight into the installed system, with the
 * partitions, labels, system slots and GRUB configuration of a node that `kairos-agent
 * install` made (docs/lifecycle.md), written at build time by an ordinary user without loop
 * devices: the rootfs streams into the squashfs (as for the ISO, kernel and initrd kept as
 * they pass), each filesystem is written in place at its partition's offset in a sparse file
 * whose GPT we write ourselves, and GRUB's boot sectors are patched in by our own code.
 * Then, if asked, the raw disk is converted (qcow2, fixed VHD, GCE tarball).
 */
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import {
  chmod,
  link,
  lstat,
  mkdir,
  mkdtemp,
  open,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";
import {
  biosBootWrites,
  createDiskFile,
  type DiskPlan,
  GPT_TYPE,
  layoutFromConfig,
  type PartitionRequest,
  type PartitionSpec,
  partitionNamed,
  planDisk,
  readPiece,
  writeExt4,
  writePieces,
  writeVfat,
} from "../disk/index.js";
import { KairosError, type Progress, run, start } from "../sys/index.js";
import { loadCloudConfig, type MediaCloudConfig } from "./cloud-config.js";
import { diskBootImages } from "./disk-boot.js";
import { resolveSourceDateEpoch } from "./iso.js";
import {
  buildLiveArtifacts,
  checkIsoName,
  ensureWritableDir,
  isoNameFromRelease,
  type RootfsSource,
} from "./live.js";
import type { SquashfsOptions } from "./squashfs.js";

export const DISK_FORMATS = ["raw", "qcow2", "vhd", "gce"] as const;
export type DiskFormat = (typeof DISK_FORMATS)[number];
export const DISK_BOOTS = ["efi", "bios", "hybrid"] as const;
export type DiskBoot = (typeof DISK_BOOTS)[number];

const MIB = 1024 * 1024;

/** Partition sizes of a disk image, bytes; undefined: computed from the system image. */
export interface DiskSizes {
  /** The whole disk (default: just large enough; COS_PERSISTENT takes what is left). */
  disk?: number;
  /** COS_STATE (default: three slots + 10% + 64 MiB: active, passive and an upgrade in flight). */
  state?: number;
  /** COS_RECOVERY (default: as COS_STATE: the recovery system and room for `upgrade --recovery`). */
  recovery?: number;
  /** COS_PERSISTENT's least size when the disk size is not given (default 256 MiB; it grows on first boot). */
  persistent?: number;
}

/** COS_PERSISTENT's least size in a disk image when no disk size is given (it grows on first boot). */
export const DISK_PERSISTENT_MIN = 256 * MIB;

const GPT_TYPES: Readonly<Record<PartitionSpec["gptType"], string>> = {
  EF02: GPT_TYPE.biosBoot,
  EF00: GPT_TYPE.efiSystem,
  "8300": GPT_TYPE.linux,
};

/** ext4 overhead allowance for a filesystem holding `bytes` of files: 10% + 64 MiB (journal, inodes). */
function withOverhead(bytes: number): number {
  return Math.ceil((bytes * 1.1 + 64 * MIB) / MIB) * MIB;
}

/**
 * The installed node's layout (src/disk's declaration: names, labels, filesystems, order) with
 * the sizes of a disk image: COS_STATE and COS_RECOVERY sized from the system slot (AuroraBoot
 * sizes the state partition at three images plus room) unless given, COS_PERSISTENT the rest.
 * COS_RECOVERY gets the same three slots: `kairos-agent upgrade --recovery` writes the new
 * recovery slot beside the old one and its space check asks 1.3x the image's compressed layers
 * (~1.6 slots for the default image: 298 MB of layers, a 245 MiB slot), which one slot + 10% +
 * 64 MiB (67 MiB free, measured) refused; an installed node's COS_RECOVERY is 8 GiB.
 */
export function diskLayout(
  slotBytes: number,
  sizes: DiskSizes = {},
): { specs: PartitionSpec[]; requests: PartitionRequest[] } {
  const minState = withOverhead(3 * slotBytes);
  const minRecovery = withOverhead(slotBytes);
  const state = sizes.state ?? minState;
  const recovery = sizes.recovery ?? minState;
  // One slot must fit whatever was asked; three are the default, not a requirement.
  if (state < minRecovery) {
    throw new KairosError(
      `COS_STATE of ${Math.round(state / MIB)} MiB cannot hold the system (${Math.ceil(slotBytes / MIB)} MiB)`,
      `give at least ${minRecovery / MIB} MiB (default: ${minState / MIB} MiB, room for an upgrade)`,
    );
  }
  if (recovery < minRecovery) {
    throw new KairosError(
      `COS_RECOVERY of ${Math.round(recovery / MIB)} MiB cannot hold the recovery system (${Math.ceil(slotBytes / MIB)} MiB)`,
      `give at least ${minRecovery / MIB} MiB`,
    );
  }
  const specs = layoutFromConfig({}).partitions;
  const requests = specs.map((p): PartitionRequest => {
    const type = GPT_TYPES[p.gptType];
    if (p.role === "state") return { name: p.name, type, size: state };
    if (p.role === "recovery") return { name: p.name, type, size: recovery };
    if (p.role === "persistent")
      return { name: p.name, type, minSize: sizes.persistent ?? DISK_PERSISTENT_MIN };
    return { name: p.name, type, size: p.sizeMiB * MIB };
  });
  return { specs, requests };
}

/** GRUB's empty environment block (what `grub-editenv FILE create` writes): 1024 bytes. */
export function emptyGrubenv(): Buffer {
  const head = "# GRUB Environment Block\n";
  return Buffer.concat([Buffer.from(head), Buffer.alloc(1024 - head.length, "#")]);
}

/** The file name on COS_OEM of the user's cloud-config (what the installer writes). */
export const OEM_CONFIG_NAME = "90_custom.yaml";

export interface DiskBuildOptions {
  rootfs: RootfsSource;
  outDir: string;
  format: DiskFormat;
  boot: DiskBoot;
  /** Base name without extension (default: from kairos-release, else "kairos"). */
  name?: string;
  /** Appended to the default name (AuroraBoot's disk.efi and disk.bios builds: "-efi", "-bios"). */
  nameSuffix?: string;
  sizes?: DiskSizes;
  cloudConfigFile?: string;
  cloudConfig?: MediaCloudConfig;
  overlayRootfs?: string;
  squashfs?: SquashfsOptions;
  /** Default $SOURCE_DATE_EPOCH, else now. */
  sourceDateEpoch?: number;
  /** GRUB image cache (default $KAIROS_CACHE/grub); false builds them every time. */
  grubCache?: string | false;
  progress?: Progress;
  signal?: AbortSignal;
}

export interface DiskBuildResult {
  /** The output file (NAME.raw, .qcow2, .vhd or .raw.tar.gz). */
  file: string;
  format: DiskFormat;
  boot: DiskBoot;
  name: string;
  /** Size of the disk it holds, and of the file. */
  diskSize: number;
  fileSize: number;
  partitions: Array<{ number: number; name: string; offset: number; size: number }>;
  release: Record<string, string>;
  slot: string;
  cloudConfig?: string;
  seconds: number;
}

/** The output file's extension per format. */
export const DISK_EXTENSIONS: Readonly<Record<DiskFormat, string>> = {
  raw: ".raw",
  qcow2: ".qcow2",
  vhd: ".vhd",
  gce: ".raw.tar.gz",
};

/** Build a disk image (see the module comment). Nothing is left in outDir on failure. */
export async function buildDisk(opts: DiskBuildOptions): Promise<DiskBuildResult> {
  const t0 = Date.now();
  if (!DISK_FORMATS.includes(opts.format)) {
    throw new KairosError(
      `disk format '${opts.format}' is not known`,
      `use one of ${DISK_FORMATS.join(", ")}`,
    );
  }
  if (!DISK_BOOTS.includes(opts.boot)) {
    throw new KairosError(`disk boot '${opts.boot}' is not known`, `use one of ${DISK_BOOTS.join(", ")}`);
  }
  const epoch = resolveSourceDateEpoch(opts.sourceDateEpoch);
  const cloudConfig =
    opts.cloudConfig ?? (opts.cloudConfigFile ? await loadCloudConfig(opts.cloudConfigFile) : undefined);
  for (const w of cloudConfig?.warnings ?? []) opts.progress?.info(w);
  const explicitName = opts.name !== undefined ? checkIsoName(opts.name) : undefined;
  const outDir = await ensureWritableDir(opts.outDir);
  const work = await mkdtemp(join(outDir, ".kairos-disk-"));
  try {
    const live = await buildLiveArtifacts({
      rootfs: opts.rootfs,
      dir: work,
      overlayRootfs: opts.overlayRootfs,
      squashfs: opts.squashfs,
      progress: opts.progress,
      signal: opts.signal,
    });
    const name = explicitName ?? checkIsoName(`${isoNameFromRelease(live.release)}${opts.nameSuffix ?? ""}`);
    const grubCfg = await readFromSquashfs(live.squashfs, "/etc/cos/grub.cfg");
    if (grubCfg === undefined) {
      throw new KairosError(
        "the image has no /etc/cos/grub.cfg (the framework's GRUB configuration for installed systems)",
        "build the disk from a Kairos image (`kairos init`), or leave out --no-init",
      );
    }
    const sizes = await Promise.all(
      [live.squashfs, live.kernel, live.initrd].map(async (f) => (await stat(f)).size),
    );
    const slotBytes = sizes.reduce((a, b) => a + b, 0);
    const seed = `${epoch}/${live.tarBytes}/${slotBytes}/${JSON.stringify(live.release)}`;
    const layout = diskLayout(slotBytes, opts.sizes);
    const plan = planDisk(layout.requests, { diskSize: opts.sizes?.disk, seed });
    const slot = slotId(epoch, seed);

    const task = opts.progress?.task(`disk image (${plan.size / MIB} MiB, ${opts.boot})`);
    const raw = join(work, "disk.raw");
    try {
      const trees = await stageTrees(work, {
        ...live,
        slot,
        grubCfg,
        cloudConfig: cloudConfig?.text,
        epoch,
        release: live.release,
      });
      const boot = await diskBootImages(join(work, "grub"), grubCfg, {
        bios: opts.boot !== "efi",
        efi: opts.boot !== "bios",
        cacheDir: opts.grubCache,
        signal: opts.signal,
      });
      await createDiskFile(raw, plan);
      await writeFilesystems(raw, plan, layout.specs, trees, boot.efiLoader, epoch, opts.signal);
      if (boot.coreImg && boot.bootImg) {
        const bios = partitionNamed(plan, roleName(layout.specs, "bios"));
        const mbr = await readPiece(raw, 0, 512);
        await writePieces(
          raw,
          biosBootWrites({
            bootImg: boot.bootImg,
            coreImg: boot.coreImg,
            mbr,
            partitionLba: bios.firstLba,
            partitionSectors: bios.lastLba - bios.firstLba + 1,
          }),
        );
      }
      task?.finish(`${plan.partitions.length} partitions`);
    } catch (err) {
      task?.fail(err instanceof Error ? err.message.split("\n")[0]! : String(err));
      throw err;
    }
    const finalName = `${name}${DISK_EXTENSIONS[opts.format]}`;
    const converted = await convert(raw, opts.format, work, epoch, opts.progress, opts.signal);
    const file = join(outDir, finalName);
    await rename(converted, file);
    return {
      file,
      format: opts.format,
      boot: opts.boot,
      name,
      diskSize: plan.size,
      fileSize: (await stat(file)).size,
      partitions: plan.partitions.map((p) => ({
        number: p.number,
        name: p.name,
        offset: p.offset,
        size: p.size,
      })),
      release: live.release,
      slot,
      cloudConfig: cloudConfig?.file,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** A slot id in the installer's form (time + 6 hex digits), here from the epoch and the inputs, so it is reproducible. */
export function slotId(epoch: number, seed: string): string {
  const time = new Date(epoch * 1000)
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return `${time}-${createHash("sha256").update(seed).digest("hex").slice(0, 6)}`;
}

/** A file's text from inside a squashfs (rdsquashfs -c), or undefined when it is not there. */
async function readFromSquashfs(squashfs: string, path: string): Promise<string | undefined> {
  try {
    return (await run("rdsquashfs", ["-c", path, squashfs])).stdout;
  } catch {
    return undefined;
  }
}

interface Trees {
  oem: string;
  recovery: string;
  state: string;
  persistent: string;
}

/**
 * The file trees of the ext4 partitions (docs/lifecycle.md). The slot's files are hard links
 * to the squashfs, kernel and initrd just built: nothing big is copied before mkfs reads them.
 * Modes are set explicitly so the builder's umask does not matter.
 */
async function stageTrees(
  work: string,
  s: {
    squashfs: string;
    kernel: string;
    initrd: string;
    slot: string;
    grubCfg: string;
    cloudConfig?: string;
    epoch: number;
    release: Record<string, string>;
  },
): Promise<Trees> {
  const trees: Trees = {
    oem: join(work, "t-oem"),
    recovery: join(work, "t-recovery"),
    state: join(work, "t-state"),
    persistent: join(work, "t-persistent"),
  };
  const dir = async (p: string) => {
    await mkdir(p, { recursive: true });
    await chmod(p, 0o755);
  };
  const file = async (p: string, data: string | Uint8Array, mode = 0o644) => {
    await writeFile(p, data);
    await chmod(p, mode);
  };
  for (const t of Object.values(trees)) await dir(t);
  const meta = `${JSON.stringify(
    {
      source: "kairos build disk",
      version: s.release.KAIROS_VERSION ?? null,
      created: new Date(s.epoch * 1000).toISOString(),
    },
    null,
    2,
  )}\n`;
  const writeSlotTree = async (root: string, names: string[]) => {
    const cos = join(root, "cOS");
    const slotDir = join(cos, "slots", s.slot);
    await dir(cos);
    await dir(join(cos, "slots"));
    await dir(slotDir);
    for (const [from, to] of [
      [s.squashfs, "system.img"],
      [s.kernel, "vmlinuz"],
      [s.initrd, "initrd"],
    ] as const) {
      await link(from, join(slotDir, to));
      await chmod(join(slotDir, to), 0o644);
    }
    await file(join(slotDir, "slot.json"), meta);
    for (const n of names) {
      await symlink(`slots/${s.slot}`, join(cos, n));
      await symlink(`${n}/system.img`, join(cos, `${n}.img`));
    }
  };
  await writeSlotTree(trees.state, ["active", "passive"]);
  await writeSlotTree(trees.recovery, ["recovery"]);
  await dir(join(trees.state, "grub2"));
  await file(join(trees.state, "grub2", "grub.cfg"), s.grubCfg);
  await file(join(trees.oem, "grubenv"), emptyGrubenv());
  if (s.cloudConfig !== undefined) await file(join(trees.oem, OEM_CONFIG_NAME), s.cloudConfig, 0o600);
  return trees;
}

/** The GPT name of the layout's partition with `role`. */
function roleName(specs: readonly PartitionSpec[], role: PartitionSpec["role"]): string {
  const p = specs.find((x) => x.role === role);
  if (!p)
    throw new KairosError(
      `the partition layout has no ${role} partition`,
      "check src/disk's layout declaration",
    );
  return p.name;
}

/** Every filesystem of the plan, written in place. The two big ext4 ones run side by side. */
async function writeFilesystems(
  raw: string,
  plan: DiskPlan,
  specs: readonly PartitionSpec[],
  trees: Trees,
  efiLoader: string | undefined,
  epoch: number,
  signal?: AbortSignal,
): Promise<void> {
  const placed = (role: PartitionSpec["role"]) => {
    const spec = specs.find((x) => x.role === role)!;
    return { spec, p: partitionNamed(plan, roleName(specs, role)) };
  };
  const efi = placed("efi");
  await writeVfat({
    file: raw,
    offset: efi.p.offset,
    size: efi.p.size,
    label: efi.spec.label ?? "COS_GRUB",
    volumeId: volumeId(efi.p.guid),
    files: efiLoader ? [{ from: efiLoader, to: "EFI/BOOT/BOOTX64.EFI" }] : [],
    signal,
  });
  const ext4 = (role: "oem" | "recovery" | "state" | "persistent", dir: string) => {
    const { spec, p } = placed(role);
    if (spec.fs !== "ext4" || !spec.label) {
      throw new KairosError(
        `the layout's ${role} partition is ${spec.fs}; disk images write ext4 only`,
        "keep ext4 for the Kairos partitions",
      );
    }
    return writeExt4({
      file: raw,
      offset: p.offset,
      size: p.size,
      label: spec.label,
      uuid: p.guid.toLowerCase(),
      dir,
      epoch,
      signal,
    });
  };
  await Promise.all([ext4("state", trees.state), ext4("recovery", trees.recovery)]);
  await Promise.all([ext4("oem", trees.oem), ext4("persistent", trees.persistent)]);
}

/** A FAT volume id (8 hex digits) from a partition GUID. */
function volumeId(guid: string): string {
  return guid.replace(/-/g, "").slice(0, 8);
}

/**
 * The raw disk in the requested format. qcow2 and VHD through qemu-img (fixed VHD with the
 * exact size, 1 MiB-aligned, as Azure requires; its footer's timestamp and id made
 * reproducible); GCE: a gzip'd GNU tar holding `disk.raw`, sparse (`--format=oldgnu -S`,
 * what `gcloud compute images import` and GCE's docs expect).
 */
async function convert(
  raw: string,
  format: DiskFormat,
  work: string,
  epoch: number,
  progress?: Progress,
  signal?: AbortSignal,
): Promise<string> {
  if (format === "raw") return raw;
  const task = progress?.task(`convert to ${format}`);
  try {
    let out: string;
    if (format === "qcow2") {
      out = join(work, "disk.qcow2");
      await run("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", raw, out], { signal });
    } else if (format === "vhd") {
      out = join(work, "disk.vhd");
      await run(
        "qemu-img",
        ["convert", "-f", "raw", "-O", "vpc", "-o", "subformat=fixed,force_size=on", raw, out],
        {
          signal,
        },
      );
      await normalizeVhdFooter(out, epoch);
    } else {
      out = join(work, "disk.raw.tar.gz");
      await gceTarball(raw, out, epoch, signal);
    }
    task?.finish(`${((await stat(out)).size / MIB).toFixed(0)} MiB`);
    return out;
  } catch (err) {
    task?.fail(err instanceof Error ? err.message.split("\n")[0]! : String(err));
    throw err;
  }
}

/** VHD timestamps count from 2000-01-01T00:00:00Z. */
const VHD_EPOCH = 946684800;

/**
 * Set the fixed VHD footer's timestamp to the build epoch and its unique id to one derived
 * from it (qemu-img writes the current time and a random id), then fix the footer checksum
 * (one's complement of the byte sum, checksum field excluded; VHD spec 1.0, "Hard Disk Footer").
 */
export async function normalizeVhdFooter(file: string, epoch: number): Promise<void> {
  const size = (await lstat(file)).size;
  const fh = await open(file, "r+");
  try {
    const footer = Buffer.alloc(512);
    await fh.read(footer, 0, 512, size - 512);
    if (footer.toString("latin1", 0, 8) !== "conectix") {
      throw new KairosError(`${file} has no VHD footer`, "qemu-img did not write a fixed VHD");
    }
    footer.writeUInt32BE(Math.max(0, epoch - VHD_EPOCH) >>> 0, 24);
    createHash("sha256").update(`vhd/${epoch}/${size}`).digest().copy(footer, 68, 0, 16);
    footer.writeUInt32BE(0, 64);
    let sum = 0;
    for (const b of footer) sum = (sum + b) >>> 0;
    footer.writeUInt32BE(~sum >>> 0, 64);
    await fh.write(footer, 0, 512, size - 512);
  } finally {
    await fh.close();
  }
}

/** GNU tar (oldgnu, sparse) of `raw` as `disk.raw`, root-owned and dated `epoch`, gzip'd without a name or date. */
async function gceTarball(raw: string, out: string, epoch: number, signal?: AbortSignal): Promise<void> {
  const dir = join(raw, "..", "gce");
  await mkdir(dir, { recursive: true });
  const inside = join(dir, "disk.raw");
  await rename(raw, inside);
  const tar = start(
    "tar",
    [
      "--format=oldgnu",
      "-S",
      `--mtime=@${epoch}`,
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      "--mode=0644",
      "-C",
      dir,
      "-cf",
      "-",
      "disk.raw",
    ],
    { signal, env: { ...process.env, TZ: "UTC" } },
  );
  tar.stdin.end();
  await Promise.all([pipeline(tar.stdout, createGzip({ level: 6 }), createWriteStream(out)), tar.done]);
}
