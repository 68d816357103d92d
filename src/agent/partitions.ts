import { mkdir, readFile, realpath } from "node:fs/promises";
import { join } from "node:path";
import { KairosError, run } from "../sys/index.js";

/** The partition labels of an installed node (docs/lifecycle.md). */
export type PartitionLabel = "COS_OEM" | "COS_RECOVERY" | "COS_STATE" | "COS_PERSISTENT";

/** Where the agent mounts a partition nobody has mounted yet. */
const AGENT_MOUNTS = "/run/kairos/mnt";

/** The block device of a partition by filesystem label: /dev/disk/by-label, else `blkid -L`. */
export async function deviceByLabel(label: string): Promise<string | undefined> {
  const byLabel = await realpath(join("/dev/disk/by-label", label)).catch(() => undefined);
  if (byLabel) return byLabel;
  const r = await run("blkid", ["-L", label]).catch(() => undefined);
  return r?.stdout.trim() || undefined;
}

interface MountInfo {
  mountPoint: string;
  source: string;
  readOnly: boolean;
}

/** Mounts of `device` (resolved path), from /proc/self/mountinfo; bind mounts of subdirectories skipped. */
export async function mountsOf(device: string, mountinfo = "/proc/self/mountinfo"): Promise<MountInfo[]> {
  const text = await readFile(mountinfo, "utf8");
  const out: MountInfo[] = [];
  for (const line of text.split("\n")) {
    const [pre, post] = line.split(" - ");
    if (!pre || !post) continue;
    const f = pre.split(" ");
    const [, source] = post.split(" ");
    if (f[3] !== "/") continue; // a bind mount of a subdirectory, not the filesystem's root
    const resolved = source ? await realpath(source).catch(() => source) : "";
    if (resolved !== device) continue;
    const unoctal = (s: string) =>
      s.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    out.push({ mountPoint: unoctal(f[4]!), source: resolved, readOnly: f[5]!.split(",").includes("ro") });
  }
  return out;
}

/**
 * Run `fn` with the partition labelled `label` mounted writable, and put it back as it was: a
 * read-only mount is remounted read-write and then read-only again; an unmounted partition is
 * mounted under /run/kairos/mnt and unmounted after.
 */
export async function withWritablePartition<T>(
  label: PartitionLabel | string,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const device = await deviceByLabel(label);
  if (!device) {
    throw new KairosError(
      `no partition labelled ${label}`,
      "this command runs on an installed node (kairos-agent install makes the partitions)",
    );
  }
  const mounts = await mountsOf(device);
  const rw = mounts.find((m) => !m.readOnly);
  if (rw) return fn(rw.mountPoint);
  const ro = mounts[0];
  if (ro) {
    await run("mount", ["-o", "remount,rw", ro.mountPoint]);
    try {
      return await fn(ro.mountPoint);
    } finally {
      await run("sync", []);
      await run("mount", ["-o", "remount,ro", ro.mountPoint]).catch(() => {});
    }
  }
  const dir = join(AGENT_MOUNTS, label);
  await mkdir(dir, { recursive: true });
  await run("mount", [device, dir]);
  try {
    return await fn(dir);
  } finally {
    await run("umount", [dir]).catch(() => run("umount", ["-l", dir]));
  }
}
