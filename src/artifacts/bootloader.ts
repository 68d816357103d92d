import { existsSync } from "node:fs";
import { stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KairosError, run } from "../sys/index.js";
import { earlyGrubCfg, GRUB_BIOS_MODULES, GRUB_EFI_MODULES, LIVE_LABEL } from "./grub.js";

/** Where Debian's grub-pc-bin and grub-efi-amd64-bin keep their platform files. */
export const GRUB_I386_PC = "/usr/lib/grub/i386-pc";
export const GRUB_X86_64_EFI = "/usr/lib/grub/x86_64-efi";

function requireGrubPlatform(dir: string, pkg: string): void {
  if (!existsSync(join(dir, "moddep.lst"))) {
    throw new KairosError(`GRUB platform files not found in ${dir}`, `install the Debian package '${pkg}'`);
  }
}

/** The BIOS MBR that lets the ISO boot from a USB stick (GRUB's boot_hybrid.img). */
export function biosHybridMbr(): string {
  requireGrubPlatform(GRUB_I386_PC, "grub-pc-bin");
  return join(GRUB_I386_PC, "boot_hybrid.img");
}

/**
 * GRUB for BIOS El Torito (`i386-pc-eltorito`: cdboot + core with biosdisk/iso9660 and every
 * module the menu needs), with the early config that finds the medium by label.
 */
export async function buildBiosEltorito(workDir: string, out: string, label = LIVE_LABEL): Promise<void> {
  requireGrubPlatform(GRUB_I386_PC, "grub-pc-bin");
  const early = join(workDir, "early-bios.cfg");
  await writeFile(early, earlyGrubCfg(label));
  await run("grub-mkimage", [
    "--directory",
    GRUB_I386_PC,
    "--format",
    "i386-pc-eltorito",
    "--prefix",
    "/boot/grub",
    "--config",
    early,
    "--output",
    out,
    ...GRUB_BIOS_MODULES,
  ]);
}

/** GRUB as the removable-media UEFI loader (BOOTX64.EFI), same early config. */
export async function buildEfiLoader(workDir: string, out: string, label = LIVE_LABEL): Promise<void> {
  requireGrubPlatform(GRUB_X86_64_EFI, "grub-efi-amd64-bin");
  const early = join(workDir, "early-efi.cfg");
  await writeFile(early, earlyGrubCfg(label));
  await run("grub-mkimage", [
    "--directory",
    GRUB_X86_64_EFI,
    "--format",
    "x86_64-efi",
    "--prefix",
    "/EFI/BOOT",
    "--config",
    early,
    "--output",
    out,
    ...GRUB_EFI_MODULES,
  ]);
}

/** FAT volume label of the EFI system partition image (must differ from the ISO's label). */
export const ESP_LABEL = "KAIROS_ESP";

/** FAT stores dates from 1980 to 2107 only; mtools writes garbage outside that range. */
const FAT_MIN_EPOCH = 315532800; // 1980-01-01T00:00:00Z
const FAT_MAX_EPOCH = 4354819199; // 2107-12-31T23:59:59Z

/** The date mtools stamps on ESP files for a given SOURCE_DATE_EPOCH (clamped into FAT's range). */
export function fatEpoch(epoch: number): number {
  return Math.min(FAT_MAX_EPOCH, Math.max(FAT_MIN_EPOCH, epoch));
}

/**
 * The EFI system partition image: a FAT file made with `mkfs.vfat -C` and filled with mtools,
 * so no loop device or mount is needed. Holds EFI/BOOT/BOOTX64.EFI and a grub.cfg copy.
 * Byte-identical for the same inputs: fixed volume id, `--invariant` (constant dates in the
 * boot sector and label entry) and mtools' SOURCE_DATE_EPOCH for file dates (in UTC, since
 * FAT dates are local time).
 */
export async function buildEfiImage(
  workDir: string,
  out: string,
  opts: { label?: string; grubCfg?: string; sourceDateEpoch?: number } = {},
): Promise<void> {
  const loader = join(workDir, "BOOTX64.EFI");
  await buildEfiLoader(workDir, loader, opts.label);
  const loaderSize = (await stat(loader)).size;
  // Room for the loader, the config and FAT overhead, rounded up to whole MiB, at least 4 MiB.
  const kib = Math.max(4096, Math.ceil((loaderSize + 1024 * 1024) / (1024 * 1024)) * 1024);
  await run("mkfs.vfat", ["--invariant", "-C", "-n", ESP_LABEL, "-i", "4B41524F", out, String(kib)]);
  const epoch = fatEpoch(opts.sourceDateEpoch ?? Math.floor(Date.now() / 1000));
  const env = { ...process.env, MTOOLS_SKIP_CHECK: "1", SOURCE_DATE_EPOCH: String(epoch), TZ: "UTC" };
  await run("mmd", ["-i", out, "::/EFI", "::/EFI/BOOT"], { env });
  await run("mcopy", ["-i", out, loader, "::/EFI/BOOT/BOOTX64.EFI"], { env });
  if (opts.grubCfg !== undefined) {
    const cfg = join(workDir, "esp-grub.cfg");
    await writeFile(cfg, opts.grubCfg);
    await run("mcopy", ["-i", out, cfg, "::/EFI/BOOT/grub.cfg"], { env });
  }
}
