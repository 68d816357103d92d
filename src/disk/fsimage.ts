/**
 * Filesystems written straight into a region of a file (a disk image, or a file of their own
 * at offset 0), from ordinary files: `mkfs.ext4 -d DIR -E offset=…` and `mkfs.vfat --offset`
 * + mtools' `FILE@@OFFSET`. No loop device, no mount, no privileges; the other regions of the
 * file are not touched. Reproducible: the same tree, label, UUID and epoch give the same bytes,
 * whoever builds it (owners are set to root and every date to the epoch afterwards).
 */
import { lstat, readdir } from "node:fs/promises";
import { join } from "node:path";
import { KairosError, run } from "../sys/index.js";

export interface Ext4Options {
  /** File to write into (created by the caller, large enough). */
  file: string;
  /** Byte offset of the filesystem in `file` (a multiple of 4096). */
  offset: number;
  /** Size in bytes (a multiple of 4096). */
  size: number;
  label: string;
  uuid: string;
  /** Directory whose contents become the filesystem's root (mkfs.ext4 -d). */
  dir?: string;
  /** Seconds since 1970 for every date in the filesystem. */
  epoch: number;
  signal?: AbortSignal;
}

const BLOCK = 4096;

function checkRegion(what: string, offset: number, size: number, align: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || offset % align !== 0) {
    throw new KairosError(`${what}: offset ${offset} is not a multiple of ${align}`, "align the partition");
  }
  if (!Number.isSafeInteger(size) || size <= 0 || size % align !== 0) {
    throw new KairosError(`${what}: size ${size} is not a positive multiple of ${align}`, "round the size");
  }
}

/** Paths (from "/", "/a", "/a/b" …) of a tree, parents first, names sorted. */
async function treePaths(dir: string): Promise<string[]> {
  const out = ["/"];
  const visit = async (host: string, rel: string) => {
    const names = (await readdir(host)).sort();
    for (const n of names) {
      if (/["\\\n\r\t ]/.test(n)) {
        throw new KairosError(
          `file name ${JSON.stringify(n)} under ${host} cannot be written`,
          "rename it (no spaces, quotes or backslashes)",
        );
      }
      const p = `${rel}/${n}`;
      out.push(p);
      const st = await lstat(join(host, n));
      if (st.isDirectory()) await visit(join(host, n), p);
    }
  };
  if (dir) await visit(dir, "");
  return out;
}

/**
 * debugfs commands that make every inode of the tree owned by root and dated `epoch`:
 * mkfs.ext4 -d copies the builder's uid/gid and the host's atime/ctime, which would make the
 * image depend on who built it and when.
 */
export function normalizeInodesScript(paths: readonly string[], epoch: number): string {
  const lines: string[] = [];
  for (const p of paths) {
    for (const field of [
      "uid 0",
      "gid 0",
      `atime @${epoch}`,
      `mtime @${epoch}`,
      `ctime @${epoch}`,
      `crtime @${epoch}`,
    ]) {
      lines.push(`sif "${p}" ${field}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** mkfs.ext4 arguments for `o` (exported for tests and the benchmark's staged pipeline). */
export function mkfsExt4Args(o: Ext4Options): string[] {
  return [
    "-q",
    "-F",
    "-t",
    "ext4",
    // The block count below is in 4 KiB blocks: without -b, mke2fs.conf's "small" and
    // "floppy" types (filesystems under 512 MiB) would read it as 1 KiB blocks.
    "-b",
    String(BLOCK),
    "-T",
    "default",
    "-L",
    o.label,
    "-U",
    o.uuid,
    "-E",
    `root_owner=0:0,hash_seed=${o.uuid},nodiscard,offset=${o.offset}`,
    ...(o.dir ? ["-d", o.dir] : []),
    o.file,
    String(o.size / BLOCK),
  ];
}

/** Write an ext4 filesystem of `o.size` bytes at `o.offset` in `o.file`, filled from `o.dir`. */
export async function writeExt4(o: Ext4Options): Promise<void> {
  checkRegion(`ext4 ${o.label}`, o.offset, o.size, BLOCK);
  if (!/^[\x21-\x7e]{1,16}$/.test(o.label)) {
    throw new KairosError(
      `ext4 label '${o.label}' is not 1-16 printable ASCII characters`,
      "use a shorter label",
    );
  }
  // E2FSPROGS_FAKE_TIME dates the superblock, the journal and lost+found; SOURCE_DATE_EPOCH is
  // what newer e2fsprogs read for the same purpose.
  const env = {
    ...process.env,
    E2FSPROGS_FAKE_TIME: String(o.epoch),
    SOURCE_DATE_EPOCH: String(o.epoch),
    TZ: "UTC",
  };
  await run("mkfs.ext4", mkfsExt4Args(o), { env, signal: o.signal });
  const paths = await treePaths(o.dir ?? "");
  await run("debugfs", ["-w", "-f", "-", `${o.file}?offset=${o.offset}`], {
    env,
    signal: o.signal,
    input: normalizeInodesScript(paths, o.epoch),
  });
}

export interface VfatOptions {
  file: string;
  /** Byte offset in `file` (a multiple of 512). */
  offset: number;
  /** Size in bytes (a multiple of 1024). */
  size: number;
  /** FAT volume label (up to 11 characters). */
  label: string;
  /** Volume id, 8 hex digits. */
  volumeId: string;
  /** Files to copy in: host path → path on the volume ("EFI/BOOT/BOOTX64.EFI"); directories are made. */
  files: ReadonlyArray<{ from: string; to: string }>;
  signal?: AbortSignal;
}

/**
 * The date of every file on FAT volumes we write: 1980-01-01 UTC, FAT's first day (as the
 * ISO's ESP): FAT has no room for owners, and a constant keeps the volume reproducible.
 */
export const FAT_EPOCH = 315532800;

/** Write a FAT filesystem at `o.offset` in `o.file` with mkfs.vfat and fill it with mtools. */
export async function writeVfat(o: VfatOptions): Promise<void> {
  checkRegion(`vfat ${o.label}`, o.offset, o.size, 1024);
  if (!/^[A-Z0-9_]{1,11}$/.test(o.label)) {
    throw new KairosError(
      `FAT label '${o.label}' is not 1-11 characters from A-Z, 0-9 and _`,
      "use a label like COS_GRUB",
    );
  }
  if (!/^[0-9A-Fa-f]{8}$/.test(o.volumeId)) {
    throw new KairosError(`FAT volume id '${o.volumeId}' is not 8 hex digits`, "for example 4B41524F");
  }
  await run(
    "mkfs.vfat",
    [
      "--invariant",
      // FAT32 as UEFI asks of an ESP: mkfs.vfat would pick the FAT type from the whole file's
      // size; 64 MiB needs one sector per cluster to reach FAT32's cluster minimum.
      "-F",
      "32",
      ...(o.size <= 256 * 1024 * 1024 ? ["-s", "1"] : []),
      "--offset",
      String(o.offset / 512),
      "-n",
      o.label,
      "-i",
      o.volumeId,
      o.file,
      String(o.size / 1024),
    ],
    { signal: o.signal },
  );
  const image = `${o.file}@@${o.offset}`;
  const env = { ...process.env, MTOOLS_SKIP_CHECK: "1", SOURCE_DATE_EPOCH: String(FAT_EPOCH), TZ: "UTC" };
  const dirs = new Set<string>();
  for (const f of o.files) {
    const parts = f.to.split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  }
  const sorted = [...dirs].sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b));
  if (sorted.length)
    await run("mmd", ["-i", image, ...sorted.map((d) => `::/${d}`)], { env, signal: o.signal });
  for (const f of o.files) {
    await run("mcopy", ["-i", image, f.from, `::/${f.to.replace(/^\/+/, "")}`], { env, signal: o.signal });
  }
}
