/**
 * GRUB for disks that boot the installed system: a BIOS core image (i386-pc, for the BIOS
 * boot partition) and the removable-media UEFI loader (EFI/BOOT/BOOTX64.EFI on COS_GRUB).
 * Both embed an early config that finds COS_STATE by label and hands over to the installed
 * grub.cfg there (docs/lifecycle.md), and carry every module that grub.cfg loads, so nothing
 * but the grub.cfg needs to be on the disk. Cached like the ISO's boot images.
 */

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { KairosError, run } from "../sys/index.js";
import {
  cachedFile,
  GRUB_I386_PC,
  GRUB_X86_64_EFI,
  grubCacheDir,
  grubPlatformIdentity,
  toolIdentity,
} from "./bootloader.js";
import { GRUB_BIOS_MODULES, GRUB_EFI_MODULES } from "./grub.js";

/** Where the installed grub.cfg lives (docs/lifecycle.md): COS_STATE:/grub2/grub.cfg. */
export const INSTALLED_GRUB_LABEL = "COS_STATE";
export const INSTALLED_GRUB_CFG = "/grub2/grub.cfg";

/** Modules the installed menu needs besides the live ones (loop-mounting images, grubenv). */
const INSTALLED_EXTRA = ["squash4", "loopback", "loadenv", "gzio", "xzio", "true", "probe", "chain"];

/** The early config of both core images: find COS_STATE, run its grub.cfg, or say what is missing. */
export function installedEarlyCfg(label = INSTALLED_GRUB_LABEL, cfg = INSTALLED_GRUB_CFG): string {
  return [
    "serial --unit=0 --speed=115200",
    "terminal_input console serial",
    "terminal_output console serial",
    `search --no-floppy --label ${label} --set root`,
    `set prefix=($root)${cfg.slice(0, cfg.lastIndexOf("/"))}`,
    `configfile ($root)${cfg}`,
    `echo "KAIROS-GRUB: partition with label ${label} not found"`,
    "",
  ].join("\n");
}

/**
 * The modules `grubCfg` loads with `insmod` (so they can be built in), plus ours. Only modules
 * the platform directory has are kept (`efi_gop` means nothing to i386-pc).
 */
export function modulesFor(base: readonly string[], grubCfg: string, platformDir: string): string[] {
  const wanted = new Set([...base, ...INSTALLED_EXTRA]);
  for (const m of grubCfg.matchAll(/\binsmod\s+([A-Za-z0-9_-]+)/g)) wanted.add(m[1]!);
  return [...wanted].filter((m) => existsSync(join(platformDir, `${m}.mod`))).sort();
}

function sha256Hex(s: string): string {
  return createHash("sha256").update(s).digest("hex");
}

export interface DiskBootImages {
  /** GRUB's boot.img (the MBR code) for BIOS. */
  bootImg: Buffer;
  /** core.img for the BIOS boot partition (block list not yet patched). */
  coreImg: Buffer;
  /** Host path of BOOTX64.EFI. */
  efiLoader: string;
}

/** Where GRUB's pieces are: Debian's paths on a build host; the image's own on a node. */
export interface GrubTools {
  /** grub-mkimage (grub2-mkimage on Fedora and openSUSE). */
  mkimage: string;
  /** The i386-pc and x86_64-efi platform directories (moddep.lst, *.mod, boot.img). */
  i386pc: string;
  x86_64efi: string;
}

export const HOST_GRUB: GrubTools = {
  mkimage: "grub-mkimage",
  i386pc: GRUB_I386_PC,
  x86_64efi: GRUB_X86_64_EFI,
};

/**
 * Build (or take from the cache) the two installed-disk GRUB images for `grubCfg` (the
 * installed menu; only its `insmod` lines matter here); `bios`/`efi` say which to make.
 * The build host uses Debian's GRUB (HOST_GRUB); the installer on a node passes the image's.
 */
export async function diskBootImages(
  workDir: string,
  grubCfg: string,
  opts: { bios: boolean; efi: boolean; cacheDir?: string | false; signal?: AbortSignal; tools?: GrubTools },
): Promise<Partial<DiskBootImages>> {
  const tools = opts.tools ?? HOST_GRUB;
  await mkdir(workDir, { recursive: true });
  const early = join(workDir, "early-disk.cfg");
  const earlyText = installedEarlyCfg();
  await writeFile(early, earlyText);
  const dir = opts.cacheDir ?? grubCacheDir();
  const out: Partial<DiskBootImages> = {};
  const one = async (
    platformDir: string,
    pkg: string,
    format: string,
    baseModules: readonly string[],
    file: string,
  ): Promise<void> => {
    if (!existsSync(join(platformDir, "moddep.lst"))) {
      throw new KairosError(
        `GRUB platform files not found in ${platformDir}`,
        `install the Debian package '${pkg}'`,
      );
    }
    const modules = modulesFor(baseModules, grubCfg, platformDir);
    const prefix = INSTALLED_GRUB_CFG.slice(0, INSTALLED_GRUB_CFG.lastIndexOf("/"));
    const args = (cfg: string, o: string) => [
      "--directory",
      platformDir,
      "--format",
      format,
      "--prefix",
      prefix,
      "--config",
      cfg,
      "--output",
      o,
      ...modules,
    ];
    const build = () => run(tools.mkimage, args(early, file), { signal: opts.signal }).then(() => {});
    if (dir === false) return build();
    const key = sha256Hex(
      JSON.stringify({
        v: 1,
        args: args("CONFIG", "OUT"),
        early: earlyText,
        platform: await grubPlatformIdentity(platformDir, modules),
        tools: [await toolIdentity(tools.mkimage)],
      }),
    );
    await cachedFile(dir, `disk-${format}-${key}.img`, file, build);
  };
  const jobs: Promise<void>[] = [];
  if (opts.bios) {
    const core = join(workDir, "core.img");
    jobs.push(
      one(tools.i386pc, "grub-pc-bin", "i386-pc", GRUB_BIOS_MODULES, core).then(async () => {
        out.coreImg = await readFile(core);
        out.bootImg = await readFile(join(tools.i386pc, "boot.img"));
      }),
    );
  }
  if (opts.efi) {
    const efi = join(workDir, "BOOTX64.EFI");
    jobs.push(
      one(tools.x86_64efi, "grub-efi-amd64-bin", "x86_64-efi", GRUB_EFI_MODULES, efi).then(() => {
        out.efiLoader = efi;
      }),
    );
  }
  await Promise.all(jobs);
  return out;
}
