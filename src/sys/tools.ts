import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import { MissingToolError } from "./errors.js";

/** Which Debian package provides each external program we call. scripts/setup installs them all. */
export const TOOL_PACKAGES: Readonly<Record<string, string>> = {
  xorriso: "xorriso",
  mksquashfs: "squashfs-tools",
  unsquashfs: "squashfs-tools",
  tar2sqfs: "squashfs-tools-ng",
  sqfs2tar: "squashfs-tools-ng",
  rdsquashfs: "squashfs-tools-ng",
  mcopy: "mtools",
  mmd: "mtools",
  mdir: "mtools",
  "mkfs.vfat": "dosfstools",
  "mkfs.ext4": "e2fsprogs",
  mke2fs: "e2fsprogs",
  debugfs: "e2fsprogs",
  e2fsck: "e2fsprogs",
  resize2fs: "e2fsprogs",
  sfdisk: "fdisk",
  tar: "tar",
  sgdisk: "gdisk",
  "grub-mkimage": "grub-common",
  "grub-mkrescue": "grub-common",
  busybox: "busybox-static",
  cpio: "cpio",
  zstd: "zstd",
  "qemu-system-x86_64": "qemu-system-x86",
  "qemu-img": "qemu-utils",
  mmdebstrap: "mmdebstrap",
  skopeo: "skopeo",
  umoci: "umoci",
  buildah: "buildah",
  podman: "podman",
  "docker-registry": "docker-registry",
  htpasswd: "apache2-utils",
  openssl: "openssl",
  setfattr: "attr",
  getfattr: "attr",
  setcap: "libcap2-bin",
  getcap: "libcap2-bin",
  mknod: "coreutils",
  dracut: "dracut-core",
  dnsmasq: "dnsmasq-base",
  depmod: "kmod",
  xz: "xz-utils",
  modprobe: "kmod",
  sh: "dash",
  chroot: "coreutils",
  systemctl: "systemd",
  hostname: "hostname",
  "systemd-firstboot": "systemd",
};

const found = new Map<string, string>();

/** Absolute path of `name` on PATH, or undefined. */
export function findTool(name: string, path = process.env.PATH ?? ""): string | undefined {
  const cached = found.get(name);
  if (cached) return cached;
  const dirs = [...path.split(delimiter), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  for (const dir of dirs) {
    if (!dir) continue;
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      found.set(name, candidate);
      return candidate;
    } catch {
      // not here; keep looking
    }
  }
  return undefined;
}

/** Absolute path of `name`, or a one-line error naming the Debian package that provides it. */
export function requireTool(name: string): string {
  const path = findTool(name);
  if (path) return path;
  const pkg = TOOL_PACKAGES[name];
  throw new MissingToolError(
    `${name} not found on PATH`,
    pkg
      ? `install the Debian package '${pkg}' (scripts/setup installs everything kairos-ts needs)`
      : "install it with your distribution's package manager",
  );
}
