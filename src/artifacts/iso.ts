import { createHash } from "node:crypto";
import { closeSync, createReadStream, openSync, writeSync } from "node:fs";
import { chmod, lstat, mkdir, readdir, writeFile } from "node:fs/promises";
import { basename, join, relative } from "node:path";
import { KairosError, run, start } from "../sys/index.js";
import { biosHybridMbr, bootImages } from "./bootloader.js";
import {
  type GrubMenuOptions,
  ISO_CONFIG,
  ISO_INITRD,
  ISO_KERNEL,
  ISO_SQUASHFS,
  LIVE_LABEL,
  liveGrubCfg,
} from "./grub.js";

/** Everything that goes on a live ISO. Big files are grafted from where they are, not copied. */
export interface IsoInputs {
  kernel: string;
  initrd: string;
  squashfs: string;
  /** The validated cloud-config text, written as /config.yaml at the ISO root. */
  cloudConfig?: string;
  /** A directory whose contents are added at the ISO root (may replace grub.cfg, not the boot files). */
  overlayIso?: string;
  /** Volume label (default COS_LIVE). */
  label?: string;
  grub?: GrubMenuOptions;
  /** Scratch directory for small generated files (grub images, ESP image). */
  workDir: string;
  /** Output file; written in place, the caller renames it into its final name. */
  out: string;
  /**
   * Seconds since 1970 (UTC) for every date on the medium: volume dates, file dates, and the
   * GPT GUIDs derived from them (the ESP's files carry a fixed date, see ESP_FILE_EPOCH).
   * Default: $SOURCE_DATE_EPOCH, else the current time. The same inputs and epoch give a
   * byte-identical ISO.
   */
  sourceDateEpoch?: number;
  /** Cache directory of the GRUB boot images (default $KAIROS_CACHE/grub); false: build them. */
  grubCache?: string | false;
  /**
   * For tests and benchmarks: let xorriso write `out` itself and hash the file afterwards,
   * instead of piping its output through the hash into `out` (the default, same bytes).
   */
  xorrisoWritesFile?: boolean;
  /**
   * Hears the bytes of ISO written so far and the expected total: the size of every file that
   * goes on the medium (the squashfs is nearly all of it), known before xorriso starts.
   */
  onBytes?: (written: number, expectedTotal: number) => void;
  signal?: AbortSignal;
}

/** What assembleIso wrote. */
export interface IsoResult {
  /** sha256 of the ISO, hex. */
  sha256: string;
  size: number;
}

/** Latest epoch accepted: well inside what ISO 9660 dates (year 9999 / 2155) can hold. */
const MAX_EPOCH = 4102444799; // 2099-12-31T23:59:59Z

/**
 * The epoch an ISO build stamps: the explicit value, else $SOURCE_DATE_EPOCH (the
 * reproducible-builds.org convention: a decimal integer, refused when malformed), else now.
 */
export function resolveSourceDateEpoch(explicit?: number, env: NodeJS.ProcessEnv = process.env): number {
  if (explicit !== undefined) {
    if (!Number.isSafeInteger(explicit) || explicit < 0 || explicit > MAX_EPOCH) {
      throw new KairosError(
        `source date epoch ${explicit} is not valid`,
        `give whole seconds since 1970 between 0 and ${MAX_EPOCH} (2099-12-31)`,
      );
    }
    return explicit;
  }
  const raw = env.SOURCE_DATE_EPOCH;
  if (raw === undefined || raw === "") return Math.floor(Date.now() / 1000);
  const n = /^[0-9]{1,10}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!(n <= MAX_EPOCH)) {
    throw new KairosError(
      `SOURCE_DATE_EPOCH='${raw}' is not valid`,
      `set it to whole seconds since 1970 between 0 and ${MAX_EPOCH} (e.g. $(git log -1 --format=%ct)), or unset it`,
    );
  }
  return n;
}

/** xorriso's --modification-date= form of an epoch: YYYYMMDDhhmmsscc in UTC. */
export function isoModificationDate(epoch: number): string {
  return `${new Date(epoch * 1000).toISOString().replace(/[-:T]/g, "").slice(0, 14)}00`;
}

/** ISO paths an overlay may not replace: they are what the medium boots. */
const PROTECTED = new Set(
  [ISO_KERNEL, ISO_INITRD, ISO_SQUASHFS, "/boot/grub/i386-pc/eltorito.img", "/boot/boot.catalog"].map((p) =>
    p.slice(1),
  ),
);

/** GPT type of the ISO9660 partition: "Basic data", in the raw byte order xorriso takes (as Ubuntu ISOs). */
const ISO_PART_TYPE = "a2a0d0ebe5b9334487c068b6b72699c7";

/** Relative paths of every file and directory under `dir` (symlinks are listed, not followed). */
async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  const visit = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const full = join(d, e.name);
      out.push(relative(dir, full).split("\\").join("/"));
      if (e.isDirectory()) await visit(full);
    }
  };
  await visit(dir);
  return out;
}

/** Check an overlay directory: it must exist and must not replace the boot files. */
export async function checkOverlayIso(dir: string): Promise<string[]> {
  let st: Awaited<ReturnType<typeof lstat>>;
  try {
    st = await lstat(dir);
  } catch {
    throw new KairosError(`ISO overlay directory ${dir} does not exist`, "pass an existing directory");
  }
  if (!st.isDirectory()) {
    throw new KairosError(`ISO overlay ${dir} is not a directory`, "pass a directory");
  }
  const files = await walk(dir);
  for (const f of files) {
    if (PROTECTED.has(f)) {
      throw new KairosError(
        `ISO overlay ${dir} contains ${f}, which the build generates`,
        "remove it from the overlay; kernel, initrd and rootfs come from the image",
      );
    }
  }
  return files;
}

/** The xorriso argument list (exported for tests and the benchmark's floor pipeline). */
export function xorrisoArgs(p: {
  out: string;
  label: string;
  mbr: string;
  efiImage: string;
  /** Directory tree merged at the ISO root, in order (later wins on conflicts is NOT relied on). */
  roots: string[];
  /** ISO path → host file. */
  grafts: Record<string, string>;
  /**
   * Make the image reproducible: every date is this epoch (volume dates, all file dates, the
   * boot catalog) and the GPT GUIDs derive from it; files are owned by root. Run xorriso with
   * SOURCE_DATE_EPOCH set as well, so nodes without a disk source get it too.
   */
  epoch?: number;
}): string[] {
  const graftEscape = (s: string) => s.replace(/\\/g, "\\\\").replace(/=/g, "\\=");
  const reproducible =
    p.epoch === undefined
      ? []
      : [
          `--modification-date=${isoModificationDate(p.epoch)}`,
          "--set_all_file_dates",
          `=${p.epoch}`,
          "--gpt_disk_guid",
          "modification-date",
          "-uid",
          "0",
          "-gid",
          "0",
        ];
  return [
    "-as",
    "mkisofs",
    "-o",
    p.out,
    "-V",
    p.label,
    ...reproducible,
    "-iso-level",
    "3",
    "-J",
    "-joliet-long",
    "-R",
    "-graft-points",
    // BIOS from a USB stick / hard disk: GRUB's hybrid MBR, pointed at the El Torito core image.
    "--grub2-mbr",
    p.mbr,
    "-partition_offset",
    "16",
    "--mbr-force-bootable",
    // UEFI: the FAT image appended as a GPT EFI system partition, also used for El Torito EFI.
    "-append_partition",
    "2",
    "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
    p.efiImage,
    "-appended_part_as_gpt",
    "-iso_mbr_part_type",
    ISO_PART_TYPE,
    "-c",
    "/boot/boot.catalog",
    "-b",
    "/boot/grub/i386-pc/eltorito.img",
    "-no-emul-boot",
    "-boot-load-size",
    "4",
    "-boot-info-table",
    "--grub2-boot-info",
    "-eltorito-alt-boot",
    "-e",
    "--interval:appended_partition_2:all::",
    "-no-emul-boot",
    ...p.roots.map((r) => `/=${graftEscape(r)}`),
    ...Object.entries(p.grafts).map(([iso, host]) => `${graftEscape(iso)}=${graftEscape(host)}`),
    // Grafted files keep their host modes, which follow the builder's umask: pin them with a
    // native command after the emulation (applied before the image is written).
    ...(p.epoch === undefined ? [] : ["--", "-chmod", "0644", ...Object.keys(p.grafts), "--"]),
  ];
}

/**
 * Assemble a hybrid live ISO: BIOS El Torito (GRUB i386-pc) + hybrid MBR for USB sticks,
 * UEFI through an appended GPT EFI system partition (also the El Torito EFI image), the live
 * GRUB menu, kernel, initrd and rootfs.squashfs, the cloud-config as /config.yaml, and the
 * overlay. No loop device, no mount, no privileges.
 */
export async function assembleIso(inputs: IsoInputs): Promise<IsoResult> {
  const label = inputs.label ?? LIVE_LABEL;
  if (!/^[A-Z0-9_]{1,32}$/.test(label)) {
    throw new KairosError(
      `ISO volume label '${label}' is not valid`,
      "use 1-32 characters from A-Z, 0-9 and _ (Kairos expects COS_LIVE)",
    );
  }
  const epoch = resolveSourceDateEpoch(inputs.sourceDateEpoch);
  const overlayFiles = inputs.overlayIso ? await checkOverlayIso(inputs.overlayIso) : [];
  const overlaySet = new Set(overlayFiles);
  const tree = join(inputs.workDir, "iso-root");
  await mkdir(join(tree, "boot/grub/i386-pc"), { recursive: true });
  // The El Torito image must be a real file in the tree (xorriso patches its boot info table).
  const efiImage = join(inputs.workDir, "efiboot.img");
  await bootImages(inputs.workDir, join(tree, "boot/grub/i386-pc/eltorito.img"), efiImage, {
    label,
    cacheDir: inputs.grubCache,
  });
  if (!overlaySet.has("boot/grub/grub.cfg")) {
    await writeFile(join(tree, "boot/grub/grub.cfg"), liveGrubCfg({ ...inputs.grub, label }));
  }
  if (inputs.cloudConfig !== undefined) {
    if (overlaySet.has(ISO_CONFIG.slice(1))) {
      throw new KairosError(
        `both a cloud-config and the ISO overlay's ${ISO_CONFIG.slice(1)} were given`,
        "pass only one of them",
      );
    }
    await writeFile(join(tree, ISO_CONFIG.slice(1)), inputs.cloudConfig);
  }
  await normalizeModes(tree);
  const roots = [tree];
  if (inputs.overlayIso) roots.push(inputs.overlayIso);
  const toFile = inputs.xorrisoWritesFile === true;
  const args = xorrisoArgs({
    out: toFile ? inputs.out : "-",
    label,
    mbr: biosHybridMbr(),
    efiImage,
    roots,
    grafts: {
      [ISO_KERNEL]: inputs.kernel,
      [ISO_INITRD]: inputs.initrd,
      [ISO_SQUASHFS]: inputs.squashfs,
    },
    epoch,
  });
  // TZ: ISO 9660 directory records carry a zone offset; UTC keeps them the same everywhere.
  const env = { ...process.env, SOURCE_DATE_EPOCH: String(epoch), TZ: "UTC" };
  if (toFile) {
    await run("xorriso", args, { signal: inputs.signal, env });
    const sha256 = await sha256File(inputs.out);
    return { sha256, size: (await lstat(inputs.out)).size };
  }
  const onBytes = inputs.onBytes;
  let report: ((written: number) => void) | undefined;
  if (onBytes) {
    const expected = await contentBytes([inputs.kernel, inputs.initrd, inputs.squashfs], roots);
    report = (n) => onBytes(n, expected);
  }
  return xorrisoThroughHash(args, inputs.out, env, inputs.signal, report);
}

/** Bytes of the given files plus every regular file under `roots`: an ISO's size, near enough. */
async function contentBytes(files: string[], roots: string[]): Promise<number> {
  let sum = 0;
  for (const f of files) sum += (await lstat(f)).size;
  for (const r of roots) {
    for (const e of await walk(r)) {
      const st = await lstat(join(r, e));
      if (st.isFile()) sum += st.size;
    }
  }
  return sum;
}

/**
 * Run xorriso with the image on its stdout and write it to `out` while hashing it, so the
 * checksum costs no second read of ~200 MB (xorriso writes the image strictly in order, the
 * same bytes as to a file; it moves its own messages to stderr).
 */
async function xorrisoThroughHash(
  args: string[],
  out: string,
  env: NodeJS.ProcessEnv,
  signal?: AbortSignal,
  onBytes?: (written: number) => void,
): Promise<IsoResult> {
  const p = start("xorriso", args, { env, signal });
  p.stdin.end();
  const h = createHash("sha256");
  let size = 0;
  let fd: number | undefined;
  try {
    fd = openSync(out, "w");
    // Synchronous writes of 64 KiB pipe chunks to the page cache: measured faster than a
    // stream pipeline into a WriteStream, and they keep chunks in order for free.
    for await (const chunk of p.stdout) {
      const b = chunk as Buffer;
      h.update(b);
      let off = 0;
      while (off < b.length) off += writeSync(fd, b, off, b.length - off);
      size += b.length;
      onBytes?.(size);
    }
  } catch (err) {
    p.kill("SIGKILL");
    await p.done.catch(() => {});
    throw err;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  await p.done;
  return { sha256: h.digest("hex"), size };
}

/**
 * The generated tree's modes would follow the builder's umask; pin them (directories 0755,
 * files 0644) so the Rock Ridge attributes are the same for every builder.
 */
async function normalizeModes(tree: string): Promise<void> {
  await chmod(tree, 0o755);
  for (const e of await walk(tree)) {
    const full = join(tree, e);
    await chmod(full, (await lstat(full)).isDirectory() ? 0o755 : 0o644);
  }
}

/** sha256 of a file, hex. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(chunk as Buffer);
  return h.digest("hex");
}

/**
 * Write `<file>.sha256` in sha256sum's format (hash, two spaces, base name). Pass the hash when
 * it is known (assembleIso returns it) to skip reading the file again.
 */
export async function writeChecksum(
  file: string,
  checksumPath = `${file}.sha256`,
  sha256?: string,
): Promise<string> {
  const hex = sha256 ?? (await sha256File(file));
  await writeFile(checksumPath, `${hex}  ${basename(file)}\n`);
  return hex;
}
