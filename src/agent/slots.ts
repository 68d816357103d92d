/**
 * System slots (docs/lifecycle.md): `cOS/slots/<id>/{system.img,vmlinuz,initrd,slot.json}`,
 * written once under `slots/.tmp-<id>` and renamed into place, and the symlinks that name
 * them (`active`, `passive`, `recovery`, `active.img` → `active/system.img`, …), replaced with
 * rename(2). Shared by install and upgrade.
 */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, open, readlink, rename, rm, symlink } from "node:fs/promises";
import { join } from "node:path";

/** What goes into a slot: host paths of the image and its boot files. */
export interface SlotSource {
  image: string;
  kernel: string;
  initrd: string;
  /** slot.json: where the image came from and what it is. */
  meta: Record<string, unknown>;
}

/** A new slot id: time + random, never reused. */
export function newSlotId(now = new Date()): string {
  return `${now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z")}-${randomBytes(3).toString("hex")}`;
}

async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Write a slot under `cosDir/slots/` (fsynced, renamed into place); returns its id. */
export async function writeSlot(cosDir: string, src: SlotSource, id = newSlotId()): Promise<string> {
  const slots = join(cosDir, "slots");
  const tmp = join(slots, `.tmp-${id}`);
  await mkdir(tmp, { recursive: true });
  try {
    const files: [string, string][] = [
      [src.image, "system.img"],
      [src.kernel, "vmlinuz"],
      [src.initrd, "initrd"],
    ];
    for (const [from, name] of files) {
      await copyFile(from, join(tmp, name));
      await fsyncPath(join(tmp, name));
    }
    const meta = join(tmp, "slot.json");
    const fh = await open(meta, "w");
    try {
      await fh.writeFile(`${JSON.stringify({ ...src.meta, created: new Date().toISOString() }, null, 2)}\n`);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsyncPath(tmp);
    await rename(tmp, join(slots, id));
    await fsyncPath(slots);
    return id;
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** Point `cosDir/name` at `target` atomically (symlink to a temporary name, rename over). */
export async function pointLink(cosDir: string, name: string, target: string): Promise<void> {
  const tmp = join(cosDir, `.${name}.tmp`);
  await rm(tmp, { force: true });
  await symlink(target, tmp);
  await rename(tmp, join(cosDir, name));
  await fsyncPath(cosDir);
}

/** The slot id a link names (`slots/<id>`), or undefined. */
export async function slotOf(cosDir: string, name: string): Promise<string | undefined> {
  const t = await readlink(join(cosDir, name)).catch(() => undefined);
  return t?.startsWith("slots/") ? t.slice("slots/".length) : undefined;
}
