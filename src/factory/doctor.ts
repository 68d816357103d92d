import { detectFamily, type Family, OsReleaseSyntaxError, parseOsRelease } from "./os-release.js";
import type { RootfsView } from "./rootfs-view.js";

/** How bad a finding is: "fail" blocks `kairos init`, "warn" is advice. */
export type Severity = "ok" | "warn" | "fail";

export interface Finding {
  /** Stable id, e.g. "kernel", "tool:mkfs.ext4". */
  id: string;
  severity: Severity;
  /** One line: what was found or what is missing. */
  message: string;
  /** Why it matters (for warn/fail). */
  why?: string;
  /** What to do, with the package for the detected family when one applies. */
  fix?: string;
}

export interface KernelInfo {
  version: string;
  /** The kernel image, e.g. /boot/vmlinuz-6.1.0-28-amd64. */
  image: string;
  /** The modules directory, e.g. /usr/lib/modules/6.1.0-28-amd64 (as found, possibly via /lib). */
  modulesDir: string;
}

export interface DoctorReport {
  ok: boolean;
  family: Family;
  osRelease?: Record<string, string>;
  kernel?: KernelInfo;
  findings: Finding[];
}

type PkgMap = Partial<Record<Family, string>>;

const pkgs = (debian: string, fedora: string, opensuse: string, alpine: string, ubuntu = debian): PkgMap => ({
  debian,
  ubuntu,
  fedora,
  opensuse,
  alpine,
});

function install(family: Family, map: PkgMap): string {
  const p = map[family];
  switch (family) {
    case "debian":
    case "ubuntu":
      return `apt-get install ${p}`;
    case "fedora":
      return `dnf install ${p}`;
    case "opensuse":
      return `zypper install ${p}`;
    case "alpine":
      return `apk add ${p}`;
    default:
      return `install ${Object.entries(map)
        .map(([f, n]) => `${n} (${f})`)
        .join(" / ")}`;
  }
}

/** A program the agent runs on the node: any one of `names`, in the usual bin directories. */
interface ToolReq {
  id: string;
  names: string[];
  severity: "fail" | "warn";
  why: string;
  pkg: PkgMap;
}

const TOOLS: ToolReq[] = [
  {
    id: "mkfs.ext4",
    names: ["mkfs.ext4"],
    severity: "fail",
    why: "the installer formats COS_STATE, COS_PERSISTENT and COS_OEM as ext4",
    pkg: pkgs("e2fsprogs", "e2fsprogs", "e2fsprogs", "e2fsprogs"),
  },
  {
    id: "mkfs.vfat",
    names: ["mkfs.vfat", "mkfs.fat"],
    severity: "fail",
    why: "the installer formats the EFI system partition (COS_GRUB) as FAT",
    pkg: pkgs("dosfstools", "dosfstools", "dosfstools", "dosfstools"),
  },
  {
    id: "partx",
    names: ["partx", "partprobe"],
    severity: "fail",
    why: "the installer writes the GPT itself and tells the kernel about it with partx (or parted's partprobe)",
    pkg: pkgs("util-linux", "util-linux", "util-linux", "util-linux-misc"),
  },
  {
    id: "grub-mkimage",
    names: ["grub-mkimage", "grub2-mkimage"],
    severity: "fail",
    why: "the installer builds GRUB's BIOS and UEFI core images on the node",
    pkg: pkgs("grub-common", "grub2-tools", "grub2", "grub"),
  },
  {
    id: "squashfs-tools",
    names: ["mksquashfs"],
    severity: "fail",
    why: "upgrades and resets write the A/B system images as squashfs on the node",
    pkg: pkgs("squashfs-tools", "squashfs-tools", "squashfs", "squashfs-tools"),
  },
  {
    id: "util-linux",
    names: ["lsblk"],
    severity: "fail",
    why: "the agent finds disks and partitions by label with lsblk/blkid",
    pkg: pkgs("util-linux", "util-linux", "util-linux", "lsblk"),
  },
  {
    id: "blkid",
    names: ["blkid"],
    severity: "fail",
    why: "the agent finds partitions by label",
    pkg: pkgs("util-linux", "util-linux", "util-linux", "blkid"),
  },
  {
    id: "losetup",
    names: ["losetup"],
    severity: "fail",
    why: "the agent loop-mounts system images to upgrade and verify them",
    pkg: pkgs("mount", "util-linux", "util-linux", "losetup", "mount"),
  },
  {
    id: "rsync",
    names: ["rsync"],
    severity: "warn",
    why: "Kairos copies persistent data and recovery contents with rsync (the seed's list)",
    pkg: pkgs("rsync", "rsync", "rsync", "rsync"),
  },
  {
    id: "sudo",
    names: ["sudo"],
    severity: "warn",
    why: "users from cloud-config get sudo rights (the seed's list)",
    pkg: pkgs("sudo", "sudo", "sudo", "sudo"),
  },
  {
    id: "efibootmgr",
    names: ["efibootmgr"],
    severity: "warn",
    why: "the installer registers a UEFI boot entry (without it, firmware falls back to EFI/BOOT/BOOTX64.EFI)",
    pkg: pkgs("efibootmgr", "efibootmgr", "efibootmgr", "efibootmgr"),
  },
];

const BIN_DIRS = ["/usr/sbin", "/usr/bin", "/sbin", "/bin"];

const GRUB_BIOS_DIRS = ["/usr/lib/grub/i386-pc", "/usr/lib/grub2/i386-pc", "/usr/share/grub2/i386-pc"];
const GRUB_EFI_DIRS = [
  "/usr/lib/grub/x86_64-efi",
  "/usr/lib/grub2/x86_64-efi",
  "/usr/share/grub2/x86_64-efi",
];
const GRUB_EFI_BINARIES = [
  "/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed",
  "/usr/lib/grub/x86_64-efi/monolithic/grubx64.efi",
  "/boot/efi/EFI/fedora/grubx64.efi",
  "/boot/efi/EFI/redhat/grubx64.efi",
  "/boot/efi/EFI/centos/grubx64.efi",
  "/boot/efi/EFI/rocky/grubx64.efi",
  "/boot/efi/EFI/almalinux/grubx64.efi",
  "/usr/share/efi/x86_64/grub.efi",
  "/usr/lib/efi/grub.efi",
];

const GLIBC_LOADERS = [
  "/lib64/ld-linux-x86-64.so.2",
  "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
  "/usr/lib64/ld-linux-x86-64.so.2",
];
const MUSL_LOADER = "/lib/ld-musl-x86_64.so.1";
const LIBSTDCXX = [
  "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
  "/lib/x86_64-linux-gnu/libstdc++.so.6",
  "/usr/lib64/libstdc++.so.6",
  "/lib64/libstdc++.so.6",
];

async function firstExisting(view: RootfsView, paths: string[]): Promise<string | undefined> {
  for (const p of paths) if (await view.exists(p)) return p;
  return undefined;
}

/** Read and parse /etc/os-release (or /usr/lib/os-release). */
export async function readOsRelease(
  view: RootfsView,
): Promise<{ file: string; text: string; fields: Map<string, string> } | undefined> {
  for (const file of ["/etc/os-release", "/usr/lib/os-release"]) {
    const buf = await view.readFile(file);
    if (buf === undefined) continue;
    const text = buf.toString("utf8");
    return { file, text, fields: parseOsRelease(text, file) };
  }
  return undefined;
}

/** Versions of kernels in /boot (vmlinuz-VER, vmlinux-VER) and in /usr/lib/modules/VER/vmlinuz. */
export async function findKernels(view: RootfsView): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  for (const name of await view.list("/boot")) {
    const m = /^(?:vmlinuz|vmlinux|bzImage|Image)-(.+)$/.exec(name);
    if (!m || m[1]!.endsWith(".old")) continue;
    const st = await view.lstat(`/boot/${name}`);
    if (st?.type === "file" || st?.type === "hardlink") found.set(m[1]!, `/boot/${name}`);
  }
  // Fedora/openSUSE ship the image inside the modules directory; /boot may only get it at install time.
  for (const dir of ["/usr/lib/modules", "/lib/modules"]) {
    for (const ver of await view.list(dir)) {
      if (!found.has(ver) && (await view.exists(`${dir}/${ver}/vmlinuz`)))
        found.set(ver, `${dir}/${ver}/vmlinuz`);
    }
  }
  return found;
}

/** Kernel versions that have a modules directory. */
async function moduleVersions(view: RootfsView): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const dir of ["/usr/lib/modules", "/lib/modules"]) {
    for (const ver of await view.list(dir)) {
      if (out.has(ver)) continue;
      const list = await view.list(`${dir}/${ver}`);
      if (list.includes("kernel") || list.includes("modules.dep")) out.set(ver, `${dir}/${ver}`);
    }
  }
  return out;
}

/** Check a rootfs against the Kairos contract. Never throws for a bad rootfs: problems are findings. */
export async function doctor(view: RootfsView): Promise<DoctorReport> {
  const findings: Finding[] = [];
  const add = (f: Finding) => findings.push(f);

  // os-release
  let family: Family = "unknown";
  let osRelease: Map<string, string> | undefined;
  try {
    const os = await readOsRelease(view);
    if (!os) {
      add({
        id: "os-release",
        severity: "fail",
        message: "no /etc/os-release or /usr/lib/os-release",
        why: "Kairos identifies the OS and writes its KAIROS_* identity into os-release",
        fix: "install the distribution's release package (base-files, fedora-release, openSUSE-release, alpine-release)",
      });
    } else {
      osRelease = os.fields;
      family = detectFamily(os.fields);
      const missing = ["ID", "NAME"].filter((k) => !os.fields.get(k));
      if (missing.length > 0) {
        add({
          id: "os-release",
          severity: "fail",
          message: `${os.file} has no ${missing.join(" or ")}`,
          why: "the flavor and the image's identity are derived from ID/NAME",
          fix: `add ${missing.map((k) => `${k}=…`).join(" and ")} to ${os.file}`,
        });
      } else {
        add({
          id: "os-release",
          severity: "ok",
          message: `${os.fields.get("PRETTY_NAME") ?? os.fields.get("NAME")} (family ${family})`,
        });
      }
      if (family === "unknown") {
        add({
          id: "family",
          severity: "warn",
          message: `unknown distribution family (ID=${os.fields.get("ID")}, ID_LIKE=${os.fields.get("ID_LIKE") ?? ""})`,
          why: "package names in the fixes below cannot be tailored",
          fix: "set ID_LIKE in os-release to the closest of debian, ubuntu, fedora, opensuse, alpine",
        });
      }
    }
  } catch (err) {
    if (!(err instanceof OsReleaseSyntaxError)) throw err;
    add({
      id: "os-release",
      severity: "fail",
      message: `malformed os-release: ${err.message}`,
      why: "Kairos and systemd read os-release as shell-style KEY=value lines",
      fix: err.hint ?? "fix the line",
    });
  }

  // libc
  const musl = await view.exists(MUSL_LOADER);
  const glibc = await firstExisting(view, GLIBC_LOADERS);
  if (glibc) {
    add({ id: "libc", severity: "ok", message: `glibc (${glibc})` });
    const cxx = await firstExisting(view, LIBSTDCXX);
    add(
      cxx
        ? { id: "libstdc++", severity: "ok", message: `libstdc++ (${cxx})` }
        : {
            id: "libstdc++",
            severity: "fail",
            message: "no libstdc++.so.6",
            why: "kairos-agent is a Node.js single executable, linked against libstdc++",
            fix: install(family, pkgs("libstdc++6", "libstdc++", "libstdc++6", "libstdc++")),
          },
    );
  } else {
    add({
      id: "libc",
      severity: "fail",
      message: musl ? "musl libc base (no glibc loader)" : "no glibc dynamic loader (ld-linux-x86-64.so.2)",
      why: "kairos-agent is a Node.js single executable that needs glibc ≥ 2.28",
      fix: musl
        ? "musl-based bases (Alpine) are not supported: use a glibc distribution, or add gcompat/glibc and test it yourself"
        : install(family, pkgs("libc6", "glibc", "glibc", "gcompat")),
    });
  }

  // kernel + modules
  const kernels = await findKernels(view);
  const mods = await moduleVersions(view);
  let kernel: KernelInfo | undefined;
  const kernelPkg = pkgs(
    "linux-image-amd64",
    "kernel kernel-modules",
    "kernel-default",
    "linux-lts",
    "linux-image-generic",
  );
  if (kernels.size === 0) {
    add({
      id: "kernel",
      severity: "fail",
      message: "no kernel in /boot (vmlinuz-VERSION)",
      why: "the image must carry its own kernel: Kairos boots it from the container image",
      fix: install(family, kernelPkg),
    });
  } else if (kernels.size > 1) {
    add({
      id: "kernel",
      severity: "fail",
      message: `${kernels.size} kernels: ${[...kernels.values()].join(", ")}`,
      why: "the boot entries and the initramfs are made for exactly one kernel",
      fix: "remove all but one kernel package (and its /boot/vmlinuz-*) in the image",
    });
  } else {
    const [version, image] = [...kernels.entries()][0]!;
    const modulesDir = mods.get(version);
    if (!modulesDir) {
      const others = [...mods.keys()];
      add({
        id: "kernel-modules",
        severity: "fail",
        message: `kernel ${version} has no modules directory${others.length ? ` (found modules for ${others.join(", ")})` : ""}`,
        why: "storage, filesystem and network drivers are loaded from the kernel's own modules",
        fix:
          others.length > 0
            ? `install the modules package matching ${version} or the kernel matching ${others.join(", ")}`
            : install(family, pkgs("linux-image-amd64", "kernel-modules", "kernel-default", "linux-lts")),
      });
    } else {
      kernel = { version, image, modulesDir };
      add({
        id: "kernel",
        severity: "ok",
        message: `kernel ${version} (${image}, modules in ${modulesDir})`,
      });
      if (!(await view.exists(`${modulesDir}/modules.dep`))) {
        add({
          id: "modules.dep",
          severity: "fail",
          message: `${modulesDir}/modules.dep is missing`,
          why: "the initramfs builder resolves module dependencies from modules.dep",
          fix: `run 'depmod -a ${version}' in the image`,
        });
      }
      const stale = [...mods.keys()].filter((v) => v !== version);
      if (stale.length > 0) {
        add({
          id: "stale-modules",
          severity: "warn",
          message: `modules for other kernel versions: ${stale.join(", ")}`,
          why: "they take space and are never loaded",
          fix: `remove ${stale.map((v) => mods.get(v)).join(" ")}`,
        });
      }
    }
  }

  // init system
  const systemd = await firstExisting(view, ["/usr/lib/systemd/systemd", "/lib/systemd/systemd"]);
  const initReal = await view.realpath("/sbin/init");
  const initIsSystemd = initReal !== undefined && /\/systemd$/.test(initReal);
  if (systemd && (initIsSystemd || initReal === undefined)) {
    add({
      id: "init",
      severity: initIsSystemd ? "ok" : "warn",
      message: initIsSystemd ? `systemd (${systemd})` : `systemd (${systemd}), but /sbin/init is missing`,
      ...(initIsSystemd
        ? {}
        : {
            why: "kernels start /sbin/init by default",
            fix: install(family, pkgs("systemd-sysv", "systemd", "systemd-sysvinit", "systemd")),
          }),
    });
  } else if (initReal !== undefined) {
    const what = /openrc/.test(initReal)
      ? "OpenRC"
      : /busybox/.test(initReal)
        ? "busybox init"
        : /runit/.test(initReal)
          ? "runit"
          : initReal;
    add({
      id: "init",
      severity: "fail",
      message: `init system ${what} is not supported yet`,
      why: "the framework's boot stages are systemd units (cos-setup-*.service)",
      fix: `use a systemd-based image (${install(family, pkgs("systemd-sysv", "systemd", "systemd-sysvinit", "systemd"))})`,
    });
  } else {
    add({
      id: "init",
      severity: "fail",
      message: "no init system (/sbin/init, systemd)",
      why: "the image must boot to an init system: Kairos' boot stages are systemd units",
      fix: install(family, pkgs("systemd-sysv", "systemd", "systemd-sysvinit", "systemd")),
    });
  }

  // tools
  for (const t of TOOLS) {
    let where: string | undefined;
    for (const n of t.names) {
      where = await firstExisting(
        view,
        BIN_DIRS.map((d) => `${d}/${n}`),
      );
      if (where) break;
    }
    add(
      where
        ? { id: `tool:${t.id}`, severity: "ok", message: `${t.id} (${where})` }
        : {
            id: `tool:${t.id}`,
            severity: t.severity,
            message: `missing ${t.names.join(" or ")}`,
            why: t.why,
            fix: install(family, t.pkg),
          },
    );
  }

  // grub platforms
  const bios = await firstExisting(view, GRUB_BIOS_DIRS);
  const efiDir = await firstExisting(view, GRUB_EFI_DIRS);
  const efiBin = await firstExisting(view, GRUB_EFI_BINARIES);
  add(
    bios
      ? { id: "grub-bios", severity: "ok", message: `GRUB BIOS modules (${bios})` }
      : {
          id: "grub-bios",
          severity: efiDir || efiBin ? "warn" : "fail",
          message: "no GRUB BIOS (i386-pc) modules",
          why: "installing on machines that boot in legacy BIOS mode needs them",
          fix: install(
            family,
            pkgs("grub-pc-bin", "grub2-pc grub2-pc-modules", "grub2-i386-pc", "grub-bios"),
          ),
        },
  );
  add(
    efiDir || efiBin
      ? {
          id: "grub-efi",
          severity: "ok",
          message: `GRUB EFI (${[efiBin, efiDir].filter(Boolean).join(", ")})`,
        }
      : {
          id: "grub-efi",
          severity: bios ? "warn" : "fail",
          message: "no GRUB EFI binaries or x86_64-efi modules",
          why: "installing on UEFI machines needs a GRUB EFI image",
          fix: install(
            family,
            pkgs("grub-efi-amd64-bin", "grub2-efi-x64 grub2-efi-x64-modules", "grub2-x86_64-efi", "grub-efi"),
          ),
        },
  );

  // ssh host keys
  const keys = (await view.list("/etc/ssh")).filter((n) => /^ssh_host_.*_key$/.test(n));
  if (keys.length > 0) {
    add({
      id: "ssh-host-keys",
      severity: "warn",
      message: `SSH host keys baked into the image: ${keys.map((k) => `/etc/ssh/${k}`).join(", ")}`,
      why: "every machine installed from this image would share the same host identity",
      fix: "rm /etc/ssh/ssh_host_* in the image (kairos init removes them from the result); sshd regenerates them on first boot",
    });
  } else {
    add({ id: "ssh-host-keys", severity: "ok", message: "no SSH host keys baked in" });
  }

  const report: DoctorReport = {
    ok: !findings.some((f) => f.severity === "fail"),
    family,
    findings,
  };
  if (osRelease) report.osRelease = Object.fromEntries(osRelease);
  if (kernel) report.kernel = kernel;
  return report;
}

/** The human rendering of a report. */
export function formatReport(report: DoctorReport, title = "image"): string {
  const mark = { ok: "✔", warn: "!", fail: "✖" } as const;
  const lines = [`Kairos contract check for ${title}:`];
  for (const f of report.findings) {
    lines.push(`  ${mark[f.severity]} ${f.id}: ${f.message}`);
    if (f.severity !== "ok") {
      if (f.why) lines.push(`      why: ${f.why}`);
      if (f.fix) lines.push(`      fix: ${f.fix}`);
    }
  }
  const fails = report.findings.filter((f) => f.severity === "fail").length;
  const warns = report.findings.filter((f) => f.severity === "warn").length;
  lines.push(
    report.ok
      ? `OK: the image meets the contract${warns ? ` (${warns} warning${warns > 1 ? "s" : ""})` : ""}`
      : `NOT OK: ${fails} requirement${fails > 1 ? "s" : ""} failed${warns ? `, ${warns} warning${warns > 1 ? "s" : ""}` : ""}`,
  );
  return lines.join("\n");
}
