import { createWriteStream } from "node:fs";
import { posix } from "node:path";
import { pipeline } from "node:stream/promises";
import { KairosError, run, start, ToolFailedError } from "../sys/index.js";

/**
 * Read-only lookups in a built rootfs: either the squashfs itself (rdsquashfs from
 * squashfs-tools-ng) or the index recorded while the same tar stream was packed
 * (rootfs-index.ts), so the kernel, the initrd and kairos-release always come from exactly
 * what the medium will boot.
 */
export interface Inode {
  type: "file" | "dir" | "symlink" | "other";
  target?: string;
}

/** The lookups the boot-file search needs, over any representation of a rootfs. */
export interface TreeView {
  /** Shown in errors. */
  describe: string;
  /** Stat `path` without following a final symlink; undefined when it does not exist. */
  stat(path: string): Promise<Inode | undefined>;
  /** Names in directory `path` (empty when it is missing or not a directory). */
  list(path: string): Promise<string[]>;
}

/** A TreeView over a squashfs image (one rdsquashfs call per lookup). */
export function squashfsView(img: string): TreeView {
  return { describe: img, stat: (p) => statInSquashfs(img, p), list: (p) => listInSquashfs(img, p) };
}

/** Stat `path` without following a final symlink; undefined when it does not exist. */
export async function statInSquashfs(img: string, path: string): Promise<Inode | undefined> {
  let out: string;
  try {
    out = (await run("rdsquashfs", ["--stat", path, img])).stdout;
  } catch (err) {
    if (err instanceof ToolFailedError) return undefined;
    throw err;
  }
  const type = /^Inode type: (.*)$/m.exec(out)?.[1]?.trim() ?? "";
  if (type.includes("symbolic link")) {
    return { type: "symlink", target: /^Link target: (.*)$/m.exec(out)?.[1] ?? "" };
  }
  if (type.includes("directory")) return { type: "dir" };
  if (type.includes("file")) return { type: "file" };
  return { type: "other" };
}

/** Names in directory `path` (empty when it is missing or not a directory). */
export async function listInSquashfs(img: string, path: string): Promise<string[]> {
  const st = await statInSquashfs(img, path);
  if (st?.type !== "dir") return [];
  const out = (await run("rdsquashfs", ["--list", path, img])).stdout;
  // Lines look like: "-rw-r--r-- 0/0 2 name" or "lrwxrwxrwx 0/0 21 name -> target".
  return out
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const m = /^\S+ \d+\/\d+ \d+ (.*)$/.exec(l);
      const rest = m?.[1] ?? "";
      return l.startsWith("l") ? rest.replace(/ -> .*$/, "") : rest;
    })
    .filter((n) => n && n !== "." && n !== "..");
}

/**
 * Resolve `path` inside the image like the kernel would (symlinks relative to their directory,
 * absolute ones from the image root, never escaping it). Returns the final path and its inode.
 */
export async function resolveIn(
  view: TreeView,
  path: string,
): Promise<{ path: string; inode: Inode } | undefined> {
  let current = posix.normalize(`/${path}`);
  for (let hops = 0; hops < 40; hops++) {
    // Resolve directory components first, then the leaf.
    const parts = current.split("/").filter(Boolean);
    let resolved = "/";
    let restart = false;
    for (let i = 0; i < parts.length; i++) {
      const candidate = posix.join(resolved, parts[i]!);
      const st = await view.stat(candidate);
      if (!st) return undefined;
      if (st.type === "symlink") {
        const target = st.target ?? "";
        const base = target.startsWith("/") ? target : posix.join(resolved, target);
        current = posix.normalize(`/${posix.join(base, ...parts.slice(i + 1))}`);
        restart = true;
        break;
      }
      if (i === parts.length - 1) return { path: candidate, inode: st };
      resolved = candidate;
    }
    if (!restart) return { path: resolved, inode: { type: "dir" } };
  }
  throw new KairosError(`too many symlinks resolving ${path} in ${view.describe}`);
}

/** resolveIn over a squashfs image. */
export function resolveInSquashfs(img: string, path: string) {
  return resolveIn(squashfsView(img), path);
}

/** Copy the regular file at `path` (symlinks followed) out of the image into `dest`. */
export async function extractFromSquashfs(img: string, path: string, dest: string): Promise<void> {
  const r = await resolveInSquashfs(img, path);
  if (r?.inode.type !== "file") {
    throw new KairosError(`${path} is not a regular file in the image`);
  }
  const child = start("rdsquashfs", ["--cat", r!.path, img]);
  child.stdin.end();
  await Promise.all([pipeline(child.stdout, createWriteStream(dest)), child.done]);
}

/** Read a small text file from the image, or undefined when it does not exist. */
export async function readTextFromSquashfs(img: string, path: string): Promise<string | undefined> {
  const r = await resolveInSquashfs(img, path);
  if (r?.inode.type !== "file") return undefined;
  return (await run("rdsquashfs", ["--cat", r!.path, img])).stdout;
}

/** Where the kernel and the initrd of a rootfs live. */
export interface BootFiles {
  kernel: string;
  initrd: string;
  /** Kernel version when it could be told from the file names. */
  version?: string;
}

/** Compare kernel versions like `sort -V` would, good enough for "6.1.0-9" vs "6.1.0-13". */
export function compareVersions(a: string, b: string): number {
  const pa = a
    .split(/[^0-9]+/)
    .filter(Boolean)
    .map(Number);
  const pb = b
    .split(/[^0-9]+/)
    .filter(Boolean)
    .map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? -1) - (pb[i] ?? -1);
    if (d !== 0) return d;
  }
  return a.localeCompare(b);
}

const KERNEL_LINKS = ["/boot/vmlinuz", "/vmlinuz", "/boot/kernel"];
const INITRD_LINKS = ["/boot/initrd", "/initrd.img", "/boot/initrd.img"];

/**
 * Find the kernel and the initrd in a rootfs image, following the Kairos contract first
 * (`/boot/vmlinuz` and `/boot/initrd`, as in the seed's Dockerfile), then the distributions'
 * own names (`/vmlinuz`, `/boot/vmlinuz-VERSION`, `/usr/lib/modules/VERSION/vmlinuz`;
 * `/boot/initrd.img-VERSION`, `/boot/initramfs-VERSION.img`, `/boot/initrd-VERSION`).
 */
export async function findBootFiles(img: string | TreeView): Promise<BootFiles> {
  const view = typeof img === "string" ? squashfsView(img) : img;
  const isFile = async (p: string) => (await resolveIn(view, p))?.inode.type === "file";
  let kernel: string | undefined;
  let version: string | undefined;
  for (const p of KERNEL_LINKS) {
    if (await isFile(p)) {
      kernel = (await resolveIn(view, p))!.path;
      break;
    }
  }
  const boot = await view.list("/boot");
  if (!kernel) {
    const versions = boot
      .filter((n) => /^vmlinuz-./.test(n))
      .map((n) => n.slice("vmlinuz-".length))
      .sort(compareVersions);
    for (const v of versions.reverse()) {
      if (await isFile(`/boot/vmlinuz-${v}`)) {
        kernel = `/boot/vmlinuz-${v}`;
        break;
      }
    }
  }
  if (!kernel) {
    for (const mods of ["/usr/lib/modules", "/lib/modules"]) {
      const versions = (await view.list(mods)).sort(compareVersions).reverse();
      for (const v of versions) {
        if (await isFile(`${mods}/${v}/vmlinuz`)) {
          kernel = `${mods}/${v}/vmlinuz`;
          break;
        }
      }
      if (kernel) break;
    }
  }
  if (!kernel) {
    throw new KairosError(
      "the image has no kernel (looked for /boot/vmlinuz, /vmlinuz, /boot/vmlinuz-*, /usr/lib/modules/*/vmlinuz)",
      "run `kairos doctor IMAGE` to see what the image is missing, or `kairos init` to make it bootable",
    );
  }
  version = /vmlinuz-(.+)$/.exec(kernel)?.[1] ?? /modules\/([^/]+)\/vmlinuz$/.exec(kernel)?.[1];

  let initrd: string | undefined;
  for (const p of INITRD_LINKS) {
    if (await isFile(p)) {
      initrd = (await resolveIn(view, p))!.path;
      break;
    }
  }
  if (!initrd && version) {
    for (const p of [
      `/boot/initrd.img-${version}`,
      `/boot/initramfs-${version}.img`,
      `/boot/initrd-${version}`,
      `/usr/lib/modules/${version}/initrd`,
    ]) {
      if (await isFile(p)) {
        initrd = (await resolveIn(view, p))!.path;
        break;
      }
    }
  }
  if (!initrd) {
    throw new KairosError(
      `the image has a kernel (${kernel}) but no initrd (looked for /boot/initrd, /initrd.img, /boot/initrd.img-*, /boot/initramfs-*.img)`,
      "run `kairos doctor IMAGE`; `kairos init` adds the Kairos initramfs",
    );
  }
  return { kernel, initrd, version };
}

/** Parse a KEY=value file (os-release, kairos-release). */
export function parseEnvFile(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2]!.trim();
    if ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))) {
      v = v.slice(1, -1).replace(/\\(["\\$`])/g, "$1");
    }
    out[m[1]!] = v;
  }
  return out;
}
