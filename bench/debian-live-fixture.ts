/**
 * Debian's own live initramfs for the live-boot comparison (issue #4): a bookworm chroot made
 * with mmdebstrap holding linux-image-amd64, live-boot and initramfs-tools with Debian's default
 * configuration (MODULES=most, zstd), whose `update-initramfs` output is the initrd a Debian live
 * image would boot. The chroot's kernel must be byte-identical to the default base's kernel (the
 * same bookworm package from the same mirror), so that both boots run the same kernel; if the
 * mirror has moved on, this fails instead of comparing different kernels.
 *
 * Then a second ISO with live-boot's layout: the same El Torito GRUB image, kernel and
 * rootfs.squashfs as the e2e fixture ISO, the squashfs at /live/filesystem.squashfs, Debian's
 * initrd as /boot/initrd and `boot=live` on the kernel command line. Everything is cached under
 * $KAIROS_CACHE/test/ by a hash of its inputs.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync } from "node:fs";
import { copyFile, mkdir, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { DEBIAN_SUITE, hostDebianMirror } from "../src/base/debian.js";
import { KairosError, run } from "../src/sys/index.js";
import { readTar } from "../src/tar/index.js";
import { fixtureKey, publishFixture } from "../test/helpers/fixture.js";
import { extractFromIso } from "../test/helpers/iso.js";
import { testCacheDir } from "../test/helpers/qemu.js";

/** What a Debian live system's initramfs is made from (live-build's defaults for bookworm). */
export const DEBIAN_LIVE_PACKAGES = [
  "linux-image-amd64",
  "initramfs-tools",
  "live-boot",
  "live-boot-initramfs-tools",
  "busybox",
  "zstd", // initramfs-tools' default COMPRESS=zstd falls back to gzip without it
] as const;

/** Bump when the recipe below changes. */
const RECIPE_VERSION = 1;

/** Debian's live-boot command line for the same serial console as ours. */
export function debianLiveCmdline(): string {
  return "boot=live console=tty1 console=ttyS0";
}

export interface DebianLiveInitrd {
  initrd: string;
  kernelVersion: string;
  initrdBytes: number;
  /** dpkg-query lines of the packages that made it. */
  packages: string[];
  /** The initramfs-tools settings it was made with (MODULES=, COMPRESS=). */
  config: string[];
  buildSeconds: number;
}

/** The kernel version and sha256 of /boot/vmlinuz-* in a rootfs tar. */
export async function tarKernel(tar: string): Promise<{ version: string; sha256: string }> {
  for await (const e of readTar(createReadStream(tar, { highWaterMark: 1 << 20 }))) {
    const m = /^(?:\.\/)?boot\/vmlinuz-(.+)$/.exec(e.path);
    if (!m || e.type !== "file") continue;
    const h = createHash("sha256");
    for await (const c of e.body) h.update(c);
    return { version: m[1]!, sha256: h.digest("hex") };
  }
  throw new KairosError(`no boot/vmlinuz-* in ${tar}`, "the base rootfs must carry its kernel");
}

async function sha256File(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest("hex");
}

/** Build (or reuse) Debian's live-boot initrd for the kernel of the base rootfs at `tar`. */
export async function debianLiveInitrd(tar: string): Promise<DebianLiveInitrd> {
  const kernel = await tarKernel(tar);
  const key = createHash("sha256")
    .update(
      JSON.stringify({
        suite: DEBIAN_SUITE,
        packages: DEBIAN_LIVE_PACKAGES,
        recipe: RECIPE_VERSION,
        kernel,
      }),
    )
    .digest("hex")
    .slice(0, 16);
  const dir = join(testCacheDir(), `debian-live-initrd-${key}`);
  const meta = join(dir, "fixture.json");
  if (existsSync(meta)) return JSON.parse(await readFile(meta, "utf8")) as DebianLiveInitrd;

  if (process.getuid?.() !== 0)
    throw new KairosError(
      "building Debian's live initrd needs root",
      "run the benchmark as root (mmdebstrap --mode=root)",
    );
  const t0 = Date.now();
  const tmp = `${dir}.tmp-${process.pid}`;
  const chroot = join(tmp, "chroot");
  await rm(tmp, { recursive: true, force: true });
  await mkdir(tmp, { recursive: true });
  try {
    // Same suite and mirror as the default base (src/base/debian.ts), so the same kernel package.
    // No extra update-initramfs: dpkg runs initramfs-tools' trigger after live-boot is configured
    // (the lsinitramfs check below proves its scripts are in).
    await run(
      "mmdebstrap",
      [
        "--variant=minbase",
        "--mode=root",
        "--format=directory",
        "--quiet",
        `--include=${DEBIAN_LIVE_PACKAGES.join(",")}`,
        DEBIAN_SUITE,
        chroot,
        await hostDebianMirror(),
      ],
      { env: { ...process.env, SOURCE_DATE_EPOCH: process.env.SOURCE_DATE_EPOCH ?? "1700000000" } },
    );
    const vmlinuz = join(chroot, "boot", `vmlinuz-${kernel.version}`);
    if (!existsSync(vmlinuz)) {
      const found = (await readdir(join(chroot, "boot"))).filter((f) => f.startsWith("vmlinuz-"));
      throw new KairosError(
        `Debian's live chroot has kernel ${found.join(", ") || "none"}, the base has ${kernel.version}`,
        "the mirror now serves another linux-image-amd64: rebuild the default base (kairos base) so both use the same kernel",
      );
    }
    if ((await sha256File(vmlinuz)) !== kernel.sha256)
      throw new KairosError(
        `Debian's live chroot has a different vmlinuz-${kernel.version} than the base`,
        "rebuild the default base so both use the same kernel package",
      );
    const initrdSrc = join(chroot, "boot", `initrd.img-${kernel.version}`);
    // live-boot's scripts must be in it, or this is not a live initrd.
    const listing = (await run("chroot", [chroot, "lsinitramfs", `/boot/initrd.img-${kernel.version}`]))
      .stdout;
    if (!/(^|\n)(usr\/)?(lib\/live\/boot|scripts\/live)/.test(listing))
      throw new KairosError(
        "Debian's initrd has no live-boot scripts",
        "check live-boot-initramfs-tools in the chroot",
      );
    const packages = (
      await run("chroot", [
        chroot,
        "dpkg-query",
        "-W",
        "-f",
        // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not a template
        "${Package} ${Version}\\n",
        `linux-image-${kernel.version}`,
        "live-boot",
        "live-boot-initramfs-tools",
        "initramfs-tools",
        "busybox",
        "udev",
      ])
    ).stdout
      .trim()
      .split("\n");
    const conf = await readFile(join(chroot, "etc", "initramfs-tools", "initramfs.conf"), "utf8");
    const config = conf.split("\n").filter((l) => /^(MODULES|COMPRESS|BUSYBOX)=/.test(l));
    await copyFile(initrdSrc, join(tmp, "initrd.img"));
    await rm(chroot, { recursive: true, force: true });
    const fx: DebianLiveInitrd = {
      initrd: join(dir, "initrd.img"),
      kernelVersion: kernel.version,
      initrdBytes: (await stat(join(tmp, "initrd.img"))).size,
      packages,
      config,
      buildSeconds: (Date.now() - t0) / 1000,
    };
    return await publishFixture(tmp, dir, fx);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

export interface DebianLiveIso {
  iso: string;
  /** The kernel extracted from the fixture ISO (the same one Debian's ISO carries). */
  kernel: string;
  /** Our initrd extracted from the fixture ISO. */
  ourInitrd: string;
  initrd: DebianLiveInitrd;
}

/**
 * A BIOS-bootable ISO with live-boot's layout made from the fixture ISO `ourIso`: its El Torito
 * GRUB image and kernel, its rootfs.squashfs as /live/filesystem.squashfs, Debian's initrd, and
 * its grub.cfg with our live arguments replaced by `boot=live`. Same volume label (the GRUB
 * image searches for it), same GRUB menu timeout.
 */
export async function debianLiveIso(ourIso: string, tar: string): Promise<DebianLiveIso> {
  const initrd = await debianLiveInitrd(tar);
  const st = await stat(ourIso);
  const key = fixtureKey({
    inputs: { ourIso, size: st.size, mtime: st.mtimeMs, initrd: initrd.initrd },
    files: ["bench/debian-live-fixture.ts"],
  });
  const dir = join(testCacheDir(), `debian-live-iso-${key}`);
  const meta = join(dir, "fixture.json");
  if (existsSync(meta)) return JSON.parse(await readFile(meta, "utf8")) as DebianLiveIso;

  const tmp = `${dir}.tmp-${process.pid}`;
  const tree = join(tmp, "tree");
  await rm(tmp, { recursive: true, force: true });
  await mkdir(join(tree, "boot", "grub", "i386-pc"), { recursive: true });
  await mkdir(join(tree, "live"), { recursive: true });
  try {
    await extractFromIso(ourIso, "/boot/kernel", join(tmp, "kernel"));
    await extractFromIso(ourIso, "/boot/initrd", join(tmp, "our-initrd"));
    await extractFromIso(
      ourIso,
      "/boot/grub/i386-pc/eltorito.img",
      join(tree, "boot", "grub", "i386-pc", "eltorito.img"),
    );
    await extractFromIso(ourIso, "/boot/grub/grub.cfg", join(tmp, "grub.cfg"));
    await extractFromIso(ourIso, "/rootfs.squashfs", join(tmp, "filesystem.squashfs"));
    const grub = await readFile(join(tmp, "grub.cfg"), "utf8");
    const ours = /linux \/boot\/kernel (root=live:\S+ rd\.live\.dir=\S+ rd\.live\.squashimg=\S+)/;
    if (!ours.test(grub)) throw new Error(`unexpected grub.cfg in ${ourIso}:\n${grub}`);
    await writeFile(
      join(tree, "boot", "grub", "grub.cfg"),
      grub.replace(new RegExp(ours.source, "g"), "linux /boot/kernel boot=live"),
    );
    const label = (await run("xorriso", ["-indev", ourIso, "-pvd_info"])).stdout.match(
      /^Volume Id\s*:\s*(\S+)/m,
    )?.[1];
    if (!label) throw new Error(`no volume id in ${ourIso}`);
    await run("xorriso", [
      "-as",
      "mkisofs",
      "-quiet",
      "-o",
      join(tmp, "debian-live.iso"),
      "-V",
      label,
      "-R",
      "-J",
      "-graft-points",
      "-c",
      "boot/boot.catalog",
      "-b",
      "boot/grub/i386-pc/eltorito.img",
      "-no-emul-boot",
      "-boot-load-size",
      "4",
      "-boot-info-table",
      "--grub2-boot-info",
      tree,
      `/boot/kernel=${join(tmp, "kernel")}`,
      `/boot/initrd=${initrd.initrd}`,
      `/live/filesystem.squashfs=${join(tmp, "filesystem.squashfs")}`,
    ]);
    await rm(tree, { recursive: true, force: true });
    await rm(join(tmp, "filesystem.squashfs"));
    const fx: DebianLiveIso = {
      iso: join(dir, "debian-live.iso"),
      kernel: join(dir, "kernel"),
      ourInitrd: join(dir, "our-initrd"),
      initrd,
    };
    // Older ISOs (another fixture ISO) are ~230 MB each: keep only this one.
    return await publishFixture(tmp, dir, fx, "debian-live-iso-");
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}
