import { randomBytes } from "node:crypto";
import {
  copyFile,
  lstat,
  mkdir,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  statfs,
} from "node:fs/promises";
import { join } from "node:path";
import { formatBytes, KairosError } from "../sys/index.js";
import { fsyncPath, replaceSymlink, writeFileAtomic } from "./durable.js";

/**
 * System slots on a partition (docs/lifecycle.md): `cOS/slots/<id>/` holds system.img,
 * vmlinuz, initrd and slot.json and is written once; `cOS/active`, `cOS/passive` (COS_STATE)
 * and `cOS/recovery` (COS_RECOVERY) are symlinks to `slots/<id>`, replaced with rename(2).
 * `cOS/<name>.img -> <name>/system.img` are fixed, for upstream's paths.
 */
export type SlotName = "active" | "passive" | "recovery";

/** The files of a complete slot; slot.json is written last. */
export const SLOT_FILES = ["system.img", "vmlinuz", "initrd", "slot.json"] as const;

/** What slot.json records. */
export interface SlotInfo {
  /** The reference the image came from, as the user gave it. */
  source: string;
  digest?: string;
  /** KAIROS_VERSION of the image's /etc/kairos-release. */
  version?: string;
  created: string;
}

export interface ResolvedSlot {
  name: SlotName;
  id: string;
  dir: string;
  info: SlotInfo;
}

const TMP_PREFIX = ".tmp-";

/** A fresh, never reused slot id: UTC time, then random hex (sorts by creation). */
export function newSlotId(now = new Date()): string {
  const t = now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z");
  return `${t}-${randomBytes(4).toString("hex")}`;
}

const slotsDir = (cos: string) => join(cos, "slots");

/** Start a slot: `slots/.tmp-<id>/`, to be filled and then committed with commitSlot. */
export async function beginSlot(cos: string, id = newSlotId()): Promise<{ id: string; dir: string }> {
  await mkdir(slotsDir(cos), { recursive: true });
  const dir = join(slotsDir(cos), `${TMP_PREFIX}${id}`);
  await mkdir(dir);
  return { id, dir };
}

/**
 * Make a filled temp slot durable and visible: write slot.json, fsync every file and the
 * directory, rename `.tmp-<id>` to `<id>`, fsync `slots/`. A crash before the rename leaves a
 * temp directory that garbageCollect removes; after it, a complete slot.
 */
export async function commitSlot(cos: string, id: string, info: SlotInfo): Promise<string> {
  const tmp = join(slotsDir(cos), `${TMP_PREFIX}${id}`);
  await writeFileAtomic(join(tmp, "slot.json"), `${JSON.stringify(info, null, 2)}\n`);
  for (const f of SLOT_FILES) {
    const st = await stat(join(tmp, f)).catch(() => undefined);
    if (!st?.isFile())
      throw new KairosError(`slot ${id} has no ${f}`, "the image was not written completely");
    await fsyncPath(join(tmp, f));
  }
  await fsyncPath(tmp);
  const dir = join(slotsDir(cos), id);
  await rename(tmp, dir);
  await fsyncPath(slotsDir(cos));
  return dir;
}

/** Read a slot directory; undefined unless it is complete. */
async function readSlot(dir: string): Promise<SlotInfo | undefined> {
  for (const f of SLOT_FILES) {
    const st = await stat(join(dir, f)).catch(() => undefined);
    if (!st?.isFile()) return undefined;
  }
  try {
    return JSON.parse(await readFile(join(dir, "slot.json"), "utf8")) as SlotInfo;
  } catch {
    return undefined;
  }
}

/** The slot a name points at, when the link exists and the slot is complete. */
export async function resolveSlot(cos: string, name: SlotName): Promise<ResolvedSlot | undefined> {
  const target = await readlink(join(cos, name)).catch(() => undefined);
  if (target === undefined) return undefined;
  const m = /^slots\/([^/]+)$/.exec(target);
  if (!m || m[1]!.startsWith(TMP_PREFIX)) return undefined;
  const dir = join(cos, target);
  const info = await readSlot(dir);
  return info ? { name, id: m[1]!, dir, info } : undefined;
}

/** Point `name` at slot `id` (and create the fixed `<name>.img` link if it is missing). */
export async function pointSlot(cos: string, name: SlotName, id: string): Promise<void> {
  await replaceSymlink(join(cos, name), `slots/${id}`);
  const img = join(cos, `${name}.img`);
  if (!(await lstat(img).catch(() => undefined))) await replaceSymlink(img, `${name}/system.img`);
}

/** The steps of a rotation, in order, for progress and crash tests. */
export type RotateStep = "passive" | "trial" | "active";

/**
 * Make slot `id` active and the old active passive (docs/lifecycle.md, steps 3 and 4): first
 * passive := old active (both names then boot the old system), then `setTrial` (the
 * boot-assessment trial; only when there was an old active), then active := new. Each step is one rename, fsynced, so a crash
 * between any two leaves both names on complete slots.
 */
export async function rotateSlots(
  cos: string,
  id: string,
  hooks: {
    setTrial?: () => Promise<void>;
    onStep?: (step: RotateStep) => Promise<void> | void;
    /**
     * The active slot failed its boot assessment (GRUB's upgrade_failure): keep passive where it
     * is, on the system that works, and replace only active. Rotating the broken one into
     * passive would leave two broken names after a crash before the activation.
     */
    activeFailed?: boolean;
  } = {},
): Promise<void> {
  const old = await resolveSlot(cos, "active");
  if (old && !hooks.activeFailed) {
    await pointSlot(cos, "passive", old.id);
    await hooks.onStep?.("passive");
  }
  if (old && hooks.activeFailed) {
    // Activate first, then the trial: until the trial is written GRUB still sees
    // upgrade_failure and boots passive, the system that works, instead of the broken active.
    await pointSlot(cos, "active", id);
    await hooks.onStep?.("active");
    await hooks.setTrial?.();
    await hooks.onStep?.("trial");
    return;
  }
  // A first deployment has nothing to fall back to: no trial then.
  if (old) await hooks.setTrial?.();
  await hooks.onStep?.("trial");
  await pointSlot(cos, "active", id);
  if (!old) await pointSlot(cos, "passive", id);
  await hooks.onStep?.("active");
}

/**
 * Remove temp slots (left by a crash or a failed write) and slots no name points at. `keep`
 * lists link names to honour (COS_STATE: active, passive; COS_RECOVERY: recovery).
 */
export async function garbageCollect(
  cos: string,
  keep: readonly SlotName[] = ["active", "passive", "recovery"],
): Promise<string[]> {
  const names = await readdir(slotsDir(cos)).catch(() => [] as string[]);
  const used = new Set<string>();
  for (const n of keep) {
    const target = await readlink(join(cos, n)).catch(() => undefined);
    if (target) used.add(target.replace(/^slots\//, ""));
  }
  const removed: string[] = [];
  for (const n of names) {
    if (used.has(n)) continue;
    await rm(join(slotsDir(cos), n), { recursive: true, force: true });
    removed.push(n);
  }
  if (removed.length) await fsyncPath(slotsDir(cos));
  return removed;
}

/** Bytes a writer can still use on the filesystem of `dir` (f_bavail: what is left after the root reserve, which we do not count on). */
export async function freeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

/**
 * Refuse before writing anything when `needed` bytes do not fit on the filesystem of `dir`,
 * saying how much is missing.
 */
export async function checkSpace(dir: string, needed: number, what: string): Promise<void> {
  const free = await freeBytes(dir);
  if (needed > free) {
    throw new KairosError(
      `not enough space for ${what} on ${dir}: it needs ${formatBytes(needed)}, ${formatBytes(free)} is free (${formatBytes(needed - free)} missing)`,
      "free space on the partition or make it larger; nothing was changed",
    );
  }
}

/** What goes into a slot copied from files (install): host paths of the image and its boot files. */
export interface SlotSource {
  image: string;
  kernel: string;
  initrd: string;
  /** slot.json: where the image came from and what it is (`created` is added). */
  meta: Record<string, unknown>;
}

/** Write a slot from files under `cosDir/slots/` (copied, fsynced, renamed into place); returns its id. */
export async function writeSlot(cosDir: string, src: SlotSource, id = newSlotId()): Promise<string> {
  const { dir } = await beginSlot(cosDir, id);
  try {
    for (const [from, name] of [
      [src.image, "system.img"],
      [src.kernel, "vmlinuz"],
      [src.initrd, "initrd"],
    ] as const) {
      await copyFile(from, join(dir, name));
    }
    await commitSlot(cosDir, id, { ...src.meta, created: new Date().toISOString() } as SlotInfo);
    return id;
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Point `cosDir/name` at `target` atomically (symlink to a temporary name, rename over, fsync). */
export async function pointLink(cosDir: string, name: string, target: string): Promise<void> {
  await replaceSymlink(join(cosDir, name), target);
}

/** The slot id a link names (`slots/<id>`), or undefined. */
export async function slotOf(cosDir: string, name: string): Promise<string | undefined> {
  const t = await readlink(join(cosDir, name)).catch(() => undefined);
  return t?.startsWith("slots/") ? t.slice("slots/".length) : undefined;
}
