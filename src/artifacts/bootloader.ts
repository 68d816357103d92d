import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cacheRoot, KairosError, requireTool, run } from "../sys/index.js";
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

/** grub-mkimage arguments of the BIOS El Torito core image (also the cache key's recipe). */
function biosEltoritoArgs(config: string, out: string): string[] {
  return [
    "--directory",
    GRUB_I386_PC,
    "--format",
    "i386-pc-eltorito",
    "--prefix",
    "/boot/grub",
    "--config",
    config,
    "--output",
    out,
    ...GRUB_BIOS_MODULES,
  ];
}

/** grub-mkimage arguments of BOOTX64.EFI (also the cache key's recipe). */
function efiLoaderArgs(config: string, out: string): string[] {
  return [
    "--directory",
    GRUB_X86_64_EFI,
    "--format",
    "x86_64-efi",
    "--prefix",
    "/EFI/BOOT",
    "--config",
    config,
    "--output",
    out,
    ...GRUB_EFI_MODULES,
  ];
}

/**
 * GRUB for BIOS El Torito (`i386-pc-eltorito`: cdboot + core with biosdisk/iso9660 and every
 * module the menu needs), with the early config that finds the medium by label.
 */
export async function buildBiosEltorito(workDir: string, out: string, label = LIVE_LABEL): Promise<void> {
  requireGrubPlatform(GRUB_I386_PC, "grub-pc-bin");
  const early = join(workDir, "early-bios.cfg");
  await writeFile(early, earlyGrubCfg(label));
  await run("grub-mkimage", biosEltoritoArgs(early, out));
}

/** GRUB as the removable-media UEFI loader (BOOTX64.EFI), same early config. */
export async function buildEfiLoader(workDir: string, out: string, label = LIVE_LABEL): Promise<void> {
  requireGrubPlatform(GRUB_X86_64_EFI, "grub-efi-amd64-bin");
  const early = join(workDir, "early-efi.cfg");
  await writeFile(early, earlyGrubCfg(label));
  await run("grub-mkimage", efiLoaderArgs(early, out));
}

/** FAT volume label of the EFI system partition image (must differ from the ISO's label). */
export const ESP_LABEL = "KAIROS_ESP";

/**
 * The date of every file on the ESP: 1980-01-01T00:00:00Z, FAT's first day. A fixed date rather
 * than the build's epoch: the ESP then depends only on GRUB, the label and its grub.cfg, like
 * the El Torito image (which holds no dates), so it stays reproducible and cacheable across
 * builds with different epochs.
 */
export const ESP_FILE_EPOCH = 315532800;

/** mkfs.vfat arguments of the ESP image of `kib` KiB (also the cache key's recipe). */
function espMkfsArgs(out: string, kib: number): string[] {
  return ["--invariant", "-C", "-n", ESP_LABEL, "-i", "4B41524F", out, String(kib)];
}

/**
 * The EFI system partition image: a FAT file made with `mkfs.vfat -C` and filled with mtools,
 * so no loop device or mount is needed. Holds EFI/BOOT/BOOTX64.EFI and a grub.cfg copy.
 * Byte-identical for the same inputs: fixed volume id, `--invariant` (constant dates in the
 * boot sector and label entry) and ESP_FILE_EPOCH as mtools' SOURCE_DATE_EPOCH for the file
 * dates (with TZ=UTC, since FAT dates are local time).
 */
export async function buildEfiImage(
  workDir: string,
  out: string,
  opts: { label?: string; grubCfg?: string } = {},
): Promise<void> {
  const loader = join(workDir, "BOOTX64.EFI");
  await buildEfiLoader(workDir, loader, opts.label);
  const loaderSize = (await stat(loader)).size;
  // Room for the loader, the config and FAT overhead, rounded up to whole MiB, at least 4 MiB.
  const kib = Math.max(4096, Math.ceil((loaderSize + 1024 * 1024) / (1024 * 1024)) * 1024);
  await run("mkfs.vfat", espMkfsArgs(out, kib));
  const env = {
    ...process.env,
    MTOOLS_SKIP_CHECK: "1",
    SOURCE_DATE_EPOCH: String(ESP_FILE_EPOCH),
    TZ: "UTC",
  };
  await run("mmd", ["-i", out, "::/EFI", "::/EFI/BOOT"], { env });
  await run("mcopy", ["-i", out, loader, "::/EFI/BOOT/BOOTX64.EFI"], { env });
  if (opts.grubCfg !== undefined) {
    const cfg = join(workDir, "esp-grub.cfg");
    await writeFile(cfg, opts.grubCfg);
    await run("mcopy", ["-i", out, cfg, "::/EFI/BOOT/grub.cfg"], { env });
  }
}

// ---- Cache of the boot images ------------------------------------------------------------
//
// The two images cost two grub-mkimage runs, mkfs.vfat and three mtools runs (~0.5 s here) and
// depend on nothing the image brings, so they are cached, keyed by everything that goes in.

/** Default cache directory of the boot images. */
export function grubCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(cacheRoot(env), "grub");
}

/**
 * Identity of what grub-mkimage reads from a platform directory for `modules`: moddep.lst's
 * text, then name, size and mtime of every non-module file (kernel.img, cdboot.img,
 * modinfo.sh with the version…) and of the modules in the dependency closure. Changes when
 * the grub package does; cheaper than stating all ~300 files.
 */
export async function grubPlatformIdentity(dir: string, modules: readonly string[]): Promise<string[]> {
  const moddep = await readFile(join(dir, "moddep.lst"), "utf8");
  const deps = new Map<string, string[]>();
  for (const line of moddep.split("\n")) {
    const [name, rest] = line.split(":");
    if (name && rest !== undefined) deps.set(name.trim(), rest.trim().split(/\s+/).filter(Boolean));
  }
  const closure = new Set<string>();
  const visit = (m: string) => {
    if (closure.has(m)) return;
    closure.add(m);
    for (const d of deps.get(m) ?? []) visit(d);
  };
  for (const m of modules) visit(m);
  const names = (await readdir(dir)).filter((n) => !n.endsWith(".mod") || closure.has(n.slice(0, -4))).sort();
  const files = await Promise.all(
    names.map(async (n) => {
      const st = await stat(join(dir, n));
      return `${n} ${st.size} ${st.mtimeMs}`;
    }),
  );
  return [sha256Hex(moddep), ...files];
}

/** Path, size and mtime of a tool's executable: changes when the tool is upgraded. */
export async function toolIdentity(tool: string): Promise<string> {
  const path = requireTool(tool);
  const st = await stat(path);
  return `${path} ${st.size} ${st.mtimeMs}`;
}

function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The cache keys of the two boot images: a hash of the recipe (argument lists) and its inputs. */
export async function bootImageKeys(opts: {
  label: string;
  espGrubCfg?: string;
}): Promise<{ bios: string; esp: string }> {
  const [pc, efi, mkimage, mkfs, mmd, mcopy] = await Promise.all([
    grubPlatformIdentity(GRUB_I386_PC, GRUB_BIOS_MODULES),
    grubPlatformIdentity(GRUB_X86_64_EFI, GRUB_EFI_MODULES),
    toolIdentity("grub-mkimage"),
    toolIdentity("mkfs.vfat"),
    toolIdentity("mmd"),
    toolIdentity("mcopy"),
  ]);
  const early = earlyGrubCfg(opts.label);
  const bios = {
    v: 1,
    args: biosEltoritoArgs("CONFIG", "OUT"),
    early,
    platform: pc,
    tools: [mkimage],
  };
  const esp = {
    v: 1,
    args: efiLoaderArgs("CONFIG", "OUT"),
    mkfs: espMkfsArgs("OUT", 0),
    early,
    platform: efi,
    tools: [mkimage, mkfs, mmd, mcopy],
    epoch: ESP_FILE_EPOCH,
    grubCfg: opts.espGrubCfg ?? null,
  };
  return { bios: sha256Hex(JSON.stringify(bios)), esp: sha256Hex(JSON.stringify(esp)) };
}

/**
 * Copy the cached file `name` to `out` when it is there and matches its recorded sha256;
 * otherwise build `out` and publish it (tmp + rename, so concurrent builds never see a partial
 * entry; two builds of one key write the same bytes). A corrupt entry is rebuilt and replaced.
 * Failing to write the cache does not fail the build.
 */
export async function cachedFile(
  dir: string,
  name: string,
  out: string,
  build: () => Promise<void>,
): Promise<boolean> {
  const entry = join(dir, name);
  try {
    const [data, sum] = await Promise.all([readFile(entry), readFile(`${entry}.sha256`, "utf8")]);
    if (sha256Hex(data) === sum.trim()) {
      await writeFile(out, data);
      return true;
    }
  } catch {
    // missing or unreadable: build it
  }
  await build();
  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(6).toString("hex")}`);
  try {
    await mkdir(dir, { recursive: true });
    const data = await readFile(out);
    await writeFile(tmp, data);
    await rename(tmp, entry);
    await writeFile(tmp, `${sha256Hex(data)}\n`);
    await rename(tmp, `${entry}.sha256`);
  } catch {
    await rm(tmp, { force: true });
  }
  return false;
}

export interface BootImagesOptions {
  label?: string;
  /** A grub.cfg copy to put next to BOOTX64.EFI. */
  espGrubCfg?: string;
  /** Cache directory (default grubCacheDir()); false builds both images every time. */
  cacheDir?: string | false;
}

/**
 * The BIOS El Torito core image and the ESP image, from the cache when an entry with the same
 * key is there. Returns which of them came from the cache.
 */
export async function bootImages(
  workDir: string,
  eltoritoOut: string,
  espOut: string,
  opts: BootImagesOptions,
): Promise<{ bios: boolean; esp: boolean }> {
  const label = opts.label ?? LIVE_LABEL;
  const buildBios = () => buildBiosEltorito(workDir, eltoritoOut, label);
  const buildEsp = () => buildEfiImage(workDir, espOut, { label, grubCfg: opts.espGrubCfg });
  const dir = opts.cacheDir ?? grubCacheDir();
  // The two are independent: on a miss they build side by side (two cores here).
  if (dir === false) {
    await Promise.all([buildBios(), buildEsp()]);
    return { bios: false, esp: false };
  }
  requireGrubPlatform(GRUB_I386_PC, "grub-pc-bin");
  requireGrubPlatform(GRUB_X86_64_EFI, "grub-efi-amd64-bin");
  const keys = await bootImageKeys({ label, espGrubCfg: opts.espGrubCfg });
  const [bios, esp] = await Promise.all([
    cachedFile(dir, `eltorito-${keys.bios}.img`, eltoritoOut, buildBios),
    cachedFile(dir, `esp-${keys.esp}.img`, espOut, buildEsp),
  ]);
  return { bios, esp };
}
