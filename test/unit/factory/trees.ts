import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { type RootfsView, TarView } from "../../../src/factory/index.js";

/** A synthetic rootfs: files (path → content), symlinks (path → target), empty dirs. */
export interface TreeSpec {
  files?: Record<string, string | Buffer>;
  symlinks?: Record<string, string>;
  dirs?: string[];
}

export async function makeDir(spec: TreeSpec): Promise<{ root: string; cleanup: () => Promise<void> }> {
  const root = await mkdtemp(join(tmpdir(), "kairos-tree-"));
  for (const d of spec.dirs ?? []) await mkdir(join(root, d), { recursive: true });
  for (const [p, target] of Object.entries(spec.symlinks ?? {})) {
    await mkdir(dirname(join(root, p)), { recursive: true });
    await symlink(target, join(root, p));
  }
  for (const [p, content] of Object.entries(spec.files ?? {})) {
    // Write through the real path so merged-usr symlinks (/lib -> usr/lib) are honoured.
    await mkdir(dirname(join(root, p)), { recursive: true });
    await writeFile(join(root, p), content);
  }
  return { root, cleanup: () => rm(root, { recursive: true, force: true }) };
}

/** The same tree as a TarView, built through fromEntries (the code path used for images). */
export async function makeTarView(spec: TreeSpec): Promise<RootfsView> {
  async function* entries() {
    const empty = (async function* () {})();
    for (const d of spec.dirs ?? []) {
      yield {
        path: d,
        type: "directory" as const,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        body: empty,
      };
    }
    for (const [p, t] of Object.entries(spec.symlinks ?? {})) {
      yield {
        path: p.replace(/^\//, ""),
        type: "symlink" as const,
        mode: 0o777,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        linkname: t,
        body: empty,
      };
    }
    for (const [p, c] of Object.entries(spec.files ?? {})) {
      const buf = Buffer.from(c);
      yield {
        path: p.replace(/^\//, ""),
        type: "file" as const,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: buf.length,
        mtime: 0,
        body: (async function* () {
          yield buf;
        })(),
      };
    }
  }
  return TarView.fromEntries(entries(), () => true);
}

const usrTools = [
  "/usr/sbin/mkfs.ext4",
  "/usr/sbin/mkfs.vfat",
  "/usr/bin/partx",
  "/usr/bin/mksquashfs",
  "/usr/bin/lsblk",
  "/usr/sbin/blkid",
  "/usr/sbin/losetup",
  "/usr/bin/rsync",
  "/usr/bin/sudo",
  "/usr/bin/efibootmgr",
];

const files = (paths: string[], content = "x") => Object.fromEntries(paths.map((p) => [p, content]));

export const DEB_KVER = "6.1.0-28-amd64";

/** Debian bookworm, merged /usr. */
export function debianTree(): TreeSpec {
  return {
    symlinks: {
      "/lib": "usr/lib",
      "/bin": "usr/bin",
      "/sbin": "usr/sbin",
      "/lib64": "usr/lib64",
      "/usr/sbin/init": "../lib/systemd/systemd",
      "/usr/lib64/ld-linux-x86-64.so.2": "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
      "/etc/os-release": "../usr/lib/os-release",
    },
    files: {
      "/usr/lib/os-release":
        'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nVERSION="12 (bookworm)"\nID=debian\n',
      [`/boot/vmlinuz-${DEB_KVER}`]: "kernel",
      [`/usr/lib/modules/${DEB_KVER}/modules.dep`]: "kernel/fs/squashfs/squashfs.ko:\n",
      [`/usr/lib/modules/${DEB_KVER}/kernel/fs/squashfs/squashfs.ko`]: "ko",
      "/usr/lib/systemd/systemd": "systemd",
      "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "ld",
      "/usr/lib/x86_64-linux-gnu/libstdc++.so.6": "cxx",
      "/usr/bin/grub-mkimage": "grub",
      "/usr/lib/grub/i386-pc/normal.mod": "m",
      "/usr/lib/grub/x86_64-efi/normal.mod": "m",
      ...files(usrTools),
    },
  };
}

export const UBU_KVER = "6.8.0-45-generic";

/** Ubuntu with a split /lib/modules (older layout). */
export function ubuntuTree(): TreeSpec {
  return {
    symlinks: {
      "/sbin/init": "/lib/systemd/systemd",
      "/lib64/ld-linux-x86-64.so.2": "/lib/x86_64-linux-gnu/ld-2.35.so",
    },
    files: {
      "/etc/os-release":
        'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME="Ubuntu 24.04 LTS"\n',
      [`/boot/vmlinuz-${UBU_KVER}`]: "kernel",
      [`/lib/modules/${UBU_KVER}/modules.dep`]: "",
      "/lib/systemd/systemd": "systemd",
      "/lib/x86_64-linux-gnu/ld-2.35.so": "ld",
      "/usr/lib/x86_64-linux-gnu/libstdc++.so.6": "cxx",
      "/usr/bin/grub-mkimage": "grub",
      "/usr/lib/grub/i386-pc/normal.mod": "m",
      "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed": "efi",
      ...files(usrTools),
    },
  };
}

export const FED_KVER = "6.5.6-300.fc39.x86_64";

/** Fedora: /boot/vmlinuz-VER, /usr/lib/modules/VER (with its own vmlinuz), grub2-*, /usr/lib64. */
export function fedoraTree(): TreeSpec {
  return {
    symlinks: {
      "/lib": "usr/lib",
      "/lib64": "usr/lib64",
      "/bin": "usr/bin",
      "/sbin": "usr/sbin",
      "/usr/sbin/init": "../lib/systemd/systemd",
    },
    files: {
      "/etc/os-release":
        'NAME="Fedora Linux"\nVERSION="39 (Container Image)"\nID=fedora\nVERSION_ID=39\nPRETTY_NAME="Fedora Linux 39 (Container Image)"\n',
      [`/boot/vmlinuz-${FED_KVER}`]: "kernel",
      [`/usr/lib/modules/${FED_KVER}/vmlinuz`]: "kernel",
      [`/usr/lib/modules/${FED_KVER}/modules.dep`]: "",
      "/usr/lib/systemd/systemd": "systemd",
      "/usr/lib64/ld-linux-x86-64.so.2": "ld",
      "/usr/lib64/libstdc++.so.6": "cxx",
      "/usr/bin/grub2-mkimage": "grub",
      "/usr/lib/grub/i386-pc/normal.mod": "m",
      "/boot/efi/EFI/fedora/grubx64.efi": "efi",
      ...files(usrTools),
    },
  };
}

export const SUSE_KVER = "6.11.2-1-default";

/** openSUSE Tumbleweed: ID_LIKE "opensuse suse", /usr/share/efi, /usr/share/grub2. */
export function opensuseTree(): TreeSpec {
  return {
    symlinks: {
      "/lib": "usr/lib",
      "/lib64": "usr/lib64",
      "/bin": "usr/bin",
      "/sbin": "usr/sbin",
      "/usr/sbin/init": "/usr/lib/systemd/systemd",
      "/etc/os-release": "../usr/lib/os-release",
    },
    files: {
      "/usr/lib/os-release":
        'NAME="openSUSE Tumbleweed"\nID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\nVERSION_ID="20241010"\nPRETTY_NAME="openSUSE Tumbleweed"\n',
      [`/boot/vmlinuz-${SUSE_KVER}`]: "kernel",
      [`/usr/lib/modules/${SUSE_KVER}/modules.dep`]: "",
      "/usr/lib/systemd/systemd": "systemd",
      "/usr/lib64/ld-linux-x86-64.so.2": "ld",
      "/usr/lib64/libstdc++.so.6": "cxx",
      "/usr/bin/grub2-mkimage": "grub",
      "/usr/share/grub2/i386-pc/normal.mod": "m",
      "/usr/share/efi/x86_64/grub.efi": "efi",
      ...files(usrTools),
    },
  };
}

/** Alpine: musl and OpenRC, no kernel. */
export function alpineTree(): TreeSpec {
  return {
    symlinks: { "/sbin/init": "/bin/busybox" },
    files: {
      "/etc/os-release":
        'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\nPRETTY_NAME="Alpine Linux v3.20"\n',
      "/bin/busybox": "bb",
      "/lib/ld-musl-x86_64.so.1": "musl",
    },
  };
}
