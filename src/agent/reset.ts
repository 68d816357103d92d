import { copyFile, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { KairosError } from "../sys/index.js";
import { ASSESSMENT_VARS } from "./boot-assessment.js";
import { fsyncPath } from "./durable.js";
import { updateGrubenv } from "./grubenv.js";
import {
  beginSlot,
  checkSpace,
  commitSlot,
  garbageCollect,
  pointSlot,
  resolveSlot,
  type SlotInfo,
} from "./slots.js";

export interface ResetOptions {
  /** `cOS` on the writable COS_STATE. */
  stateCos: string;
  /** `cOS` on COS_RECOVERY (read only is enough). */
  recoveryCos: string;
  /** Root of the writable COS_PERSISTENT: emptied. */
  persistent: string;
  /** Root of the writable COS_OEM: kept, emptied with resetOem (grubenv stays). */
  oem: string;
  resetOem?: boolean;
  onStep?: (step: "copied" | "passive" | "active" | "persistent" | "oem") => Promise<void> | void;
}

/** Remove everything in a filesystem root except the names in `keep` (lost+found is ext4's own). */
async function emptyDir(dir: string, keep: readonly string[]): Promise<void> {
  for (const name of await readdir(dir)) {
    if (name === "lost+found" || keep.includes(name)) continue;
    await rm(join(dir, name), { recursive: true, force: true });
  }
  await fsyncPath(dir);
}

/**
 * Factory reset from recovery (docs/lifecycle.md): a new slot on COS_STATE copied from the
 * recovery slot becomes passive, then active (each a rename: a crash leaves complete slots
 * under both names), old slots go, COS_PERSISTENT is emptied, COS_OEM kept unless resetOem.
 * The boot-assessment variables and next_entry are cleared: the next boot is a plain `cos`.
 */
export async function resetSystem(opts: ResetOptions): Promise<SlotInfo> {
  const recovery = await resolveSlot(opts.recoveryCos, "recovery");
  if (!recovery) {
    throw new KairosError(
      `no complete recovery system in ${opts.recoveryCos}`,
      "the recovery partition is needed for a reset (upgrade it with 'kairos-agent upgrade --recovery')",
    );
  }
  const files = ["system.img", "vmlinuz", "initrd"] as const;
  let bytes = 0;
  for (const f of files) bytes += (await stat(join(recovery.dir, f))).size;
  await garbageCollect(opts.stateCos, ["active", "passive"]);
  await checkSpace(opts.stateCos, bytes, "the system copied from recovery");

  const { id, dir } = await beginSlot(opts.stateCos);
  const info: SlotInfo = {
    ...recovery.info,
    source: `recovery:${recovery.info.source}`,
    created: new Date().toISOString(),
  };
  try {
    for (const f of files) await copyFile(join(recovery.dir, f), join(dir, f));
    await commitSlot(opts.stateCos, id, info);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  await opts.onStep?.("copied");
  await pointSlot(opts.stateCos, "passive", id);
  await opts.onStep?.("passive");
  await pointSlot(opts.stateCos, "active", id);
  await opts.onStep?.("active");
  await garbageCollect(opts.stateCos, ["active", "passive"]);

  await emptyDir(opts.persistent, []);
  await opts.onStep?.("persistent");
  if (opts.resetOem) {
    await emptyDir(opts.oem, ["grubenv"]);
    await opts.onStep?.("oem");
  }
  const clear: Record<string, undefined> = { next_entry: undefined };
  for (const v of ASSESSMENT_VARS) clear[v] = undefined;
  await updateGrubenv(join(opts.oem, "grubenv"), clear);
  return info;
}
