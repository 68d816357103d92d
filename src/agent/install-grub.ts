/**
 * GRUB on the disk the installer writes, without grub-install: the two core images are built
 * with grub-mkimage from the image's own GRUB (the recipe disk images use, so an installed
 * node and a `kairos build disk` image boot the same way), then boot.img and core.img are
 * written to the MBR and the BIOS boot partition (src/disk/bios-boot.ts) and BOOTX64.EFI is
 * copied to COS_GRUB's removable-media path.
 *
 * Why not grub-install: it copies every module of its platform to the disk and probes every
 * device, twice (BIOS and UEFI); under emulation that was ~11 s, over a third of the install
 * (docs/benchmarks.md). The core images carry every module the installed grub.cfg loads, so
 * the disk needs no module directory.
 */
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { diskBootImages, type GrubTools } from "../artifacts/disk-boot.js";
import { biosBootWrites, readPiece, SECTOR, writePieces } from "../disk/index.js";
import { findTool, KairosError } from "../sys/index.js";

/** Where distributions keep GRUB's platform directories (Debian/Fedora, openSUSE, older layouts). */
const PLATFORM_ROOTS = ["/usr/lib/grub", "/usr/share/grub2", "/usr/lib/grub2"];

/** The image's GRUB: grub-mkimage (or grub2-mkimage) and both platform directories, or a clear error. */
export function findGrubTools(root = "/", path?: string): GrubTools {
  const mkimage = findTool("grub-mkimage", path) ?? findTool("grub2-mkimage", path);
  if (!mkimage) {
    throw new KairosError(
      "neither grub-mkimage nor grub2-mkimage is on this system: the installer builds GRUB's core images with it",
      "add GRUB's tools to the image (Debian: grub-common; Fedora: grub2-tools; openSUSE: grub2)",
    );
  }
  const platform = (name: string, pkg: string): string => {
    const dir = PLATFORM_ROOTS.map((r) => join(root, r, name)).find((d) => existsSync(join(d, "moddep.lst")));
    if (!dir) {
      throw new KairosError(
        `GRUB's ${name} modules are not on this system (looked in ${PLATFORM_ROOTS.map((r) => `${r}/${name}`).join(", ")})`,
        `add them to the image (Debian: ${pkg})`,
      );
    }
    return dir;
  };
  return {
    mkimage,
    i386pc: platform("i386-pc", "grub-pc-bin"),
    x86_64efi: platform("x86_64-efi", "grub-efi-amd64-bin"),
  };
}

/** The installed menu (the framework's /etc/cos/grub.cfg), or a clear error when the image lacks it. */
export async function loadGrubCfg(path = "/etc/cos/grub.cfg"): Promise<string> {
  if (!existsSync(path))
    throw new KairosError(`the image has no ${path} (the framework's GRUB configuration)`);
  return readFile(path, "utf8");
}

export interface GrubTarget {
  /** The disk (a block device, or an image file in tests). */
  device: string;
  /** The BIOS boot partition in 512-byte sectors; undefined: UEFI only. */
  bios?: { firstLba: number; sectors: number };
  /** COS_STATE, mounted: gets /grub2/grub.cfg. */
  stateDir: string;
  /** COS_GRUB, mounted: gets EFI/BOOT/BOOTX64.EFI. */
  efiDir: string;
  /** The installed menu's text (loadGrubCfg), written to COS_STATE:/grub2/grub.cfg. */
  grubCfg: string;
  /** Scratch space for the two images. */
  workDir: string;
  tools: GrubTools;
}

/** Build both core images and put GRUB on `t.device` for BIOS and UEFI. */
export async function installGrubImages(t: GrubTarget, log: (l: string) => void = () => {}): Promise<void> {
  await mkdir(join(t.stateDir, "grub2"), { recursive: true });
  await writeFile(join(t.stateDir, "grub2", "grub.cfg"), t.grubCfg);
  const images = await diskBootImages(t.workDir, t.grubCfg, {
    bios: t.bios !== undefined,
    efi: true,
    cacheDir: false,
    tools: t.tools,
  });
  if (t.bios) {
    if (!images.bootImg || !images.coreImg) throw new KairosError("grub-mkimage made no BIOS core image");
    const mbr = await readPiece(t.device, 0, SECTOR);
    await writePieces(
      t.device,
      biosBootWrites({
        bootImg: images.bootImg,
        coreImg: images.coreImg,
        mbr,
        partitionLba: t.bios.firstLba,
        partitionSectors: t.bios.sectors,
      }),
    );
    log(
      `GRUB (BIOS): boot.img in the MBR of ${t.device}, core.img (${images.coreImg.length} bytes) in the BIOS boot partition`,
    );
  }
  const efiBoot = join(t.efiDir, "EFI", "BOOT");
  await mkdir(efiBoot, { recursive: true });
  await copyFile(images.efiLoader!, join(efiBoot, "BOOTX64.EFI"));
  log("GRUB (UEFI): EFI/BOOT/BOOTX64.EFI");
}
