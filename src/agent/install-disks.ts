/**
 * Which disk the installer writes to: `install.device` (`auto`, `/dev/…`, `/dev/disk/by-*\/…`)
 * resolved against the disks the kernel knows, never the live medium or a disk in use.
 * `sys` and `proc` let tests point at a fake tree.
 */
import { readdir, readFile, realpath } from "node:fs/promises";
import { basename, join } from "node:path";
import { KairosError } from "../sys/index.js";

export interface Disk {
  /** /dev/NAME */
  device: string;
  name: string;
  bytes: number;
  readOnly: boolean;
}

export interface SystemPaths {
  sys: string;
  proc: string;
  dev: string;
}

export const REAL_SYSTEM: SystemPaths = { sys: "/sys", proc: "/proc", dev: "/dev" };

const text = (p: string) =>
  readFile(p, "utf8").then(
    (s) => s.trim(),
    () => undefined,
  );

/** Whole disks the installer may consider (no loop, ram, zram, CD-ROM, floppy or device-mapper nodes). */
export async function listDisks(paths: SystemPaths = REAL_SYSTEM): Promise<Disk[]> {
  const names = await readdir(join(paths.sys, "block")).catch(() => [] as string[]);
  const disks: Disk[] = [];
  for (const name of names.sort()) {
    if (/^(loop|ram|zram|sr|fd|dm-|md|nbd)/.test(name)) continue;
    const sectors = Number(await text(join(paths.sys, "block", name, "size")));
    if (!sectors) continue;
    disks.push({
      device: `/dev/${name}`,
      name,
      bytes: sectors * 512,
      readOnly: (await text(join(paths.sys, "block", name, "ro"))) === "1",
    });
  }
  return disks;
}

/** The whole-disk name behind a block device node name (vda3 → vda, sr0 → sr0). */
export async function diskOf(name: string, paths: SystemPaths = REAL_SYSTEM): Promise<string> {
  const link = await realpath(join(paths.sys, "class", "block", name)).catch(() => undefined);
  if (!link) return name;
  if ((await text(join(link, "partition"))) !== undefined) return basename(join(link, ".."));
  return name;
}

interface MountEntry {
  source: string;
  target: string;
  majmin: string;
}

async function mounts(paths: SystemPaths): Promise<MountEntry[]> {
  const info = (await text(join(paths.proc, "self", "mountinfo"))) ?? "";
  return info
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const f = l.split(" ");
      const dash = f.indexOf("-");
      return { majmin: f[2] ?? "", target: f[4] ?? "", source: f[dash + 2] ?? "" };
    });
}

async function diskOfMajMin(majmin: string, paths: SystemPaths): Promise<string | undefined> {
  const link = await realpath(join(paths.sys, "dev", "block", majmin)).catch(() => undefined);
  if (!link) return undefined;
  return diskOf(basename(link), paths);
}

/**
 * Disks that must not be written: the one holding the live medium (/run/initramfs/live, and
 * what a loop device it backs sits on) and every disk with a mounted filesystem.
 */
export async function busyDisks(
  paths: SystemPaths = REAL_SYSTEM,
): Promise<{ live?: string; mounted: Map<string, string> }> {
  const mounted = new Map<string, string>();
  let live: string | undefined;
  for (const m of await mounts(paths)) {
    if (!m.source.startsWith("/dev/")) continue;
    const disk = await diskOfMajMin(m.majmin, paths);
    if (!disk || disk.startsWith("loop")) continue;
    if (m.target === "/run/initramfs/live") live = disk;
    if (!mounted.has(disk)) mounted.set(disk, m.target);
  }
  return { ...(live ? { live } : {}), mounted };
}

/**
 * Resolve `install.device`. `auto`: the largest writable disk that is neither the live medium
 * nor mounted. A named device must be a whole disk, not the live medium, not in use.
 */
export async function resolveInstallDevice(
  spec: string | undefined,
  paths: SystemPaths = REAL_SYSTEM,
): Promise<Disk> {
  const disks = await listDisks(paths);
  const busy = await busyDisks(paths);
  const refuse = (d: Disk): string | undefined => {
    if (d.name === busy.live) return `${d.device} holds the live medium this system booted from`;
    const m = busy.mounted.get(d.name);
    if (m) return `${d.device} is in use (a filesystem on it is mounted at ${m})`;
    if (d.readOnly) return `${d.device} is read-only`;
    return undefined;
  };
  const want = spec?.trim() || "auto";
  if (want === "auto") {
    const usable = disks.filter((d) => !refuse(d)).sort((a, b) => b.bytes - a.bytes);
    if (!usable.length) {
      const seen = disks.map((d) => `${d.device} (${refuse(d) ?? "?"})`).join(", ") || "none";
      throw new KairosError(
        "install.device is auto but no disk can be installed to",
        `disks seen: ${seen}; attach a disk or set install.device`,
      );
    }
    return usable[0]!;
  }
  if (!want.startsWith("/dev/")) {
    throw new KairosError(`install.device ${JSON.stringify(want)} is not auto or a /dev path`);
  }
  const real = await realpath(want.replace(/^\/dev\//, `${paths.dev}/`)).catch(() => undefined);
  if (!real)
    throw new KairosError(`install.device ${want} does not exist`, "see lsblk for the disks of this node");
  const name = basename(real);
  const isCd = /^sr\d/.test(name);
  const disk = disks.find((d) => d.name === name);
  if (!disk && !isCd) {
    const parent = await diskOf(name, paths);
    throw new KairosError(
      `install.device ${want} is not a whole disk${parent !== name ? ` (it is a partition of /dev/${parent})` : ""}`,
      "name the disk itself, e.g. /dev/vda",
    );
  }
  if (isCd && busy.live !== name) throw new KairosError(`install.device ${want} is a CD-ROM drive`);
  const d = disk ?? { device: `/dev/${name}`, name, bytes: 0, readOnly: true };
  const why = refuse(d);
  if (why)
    throw new KairosError(`refusing to install to ${want}: ${why}`, "choose another disk (lsblk lists them)");
  return d;
}
