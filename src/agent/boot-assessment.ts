import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { readGrubenv, updateGrubenv } from "./grubenv.js";
import type { BootState } from "./state.js";

/**
 * Boot assessment, agent side (docs/lifecycle.md). GRUB turns `boot_assessment=trial` into
 * `tried` when it boots the new active image, and a `tried` it finds again (that boot never
 * confirmed) into `upgrade_failure=1` and the fallback entry. Before each fallback boot it makes
 * for a failure it sets `fallback_assessment=tried`; finding it still set, GRUB goes to recovery
 * (no loop between two broken images). This side clears what a boot that reached multi-user
 * confirms.
 */
export const ASSESSMENT_VARS = ["boot_assessment", "upgrade_failure", "fallback_assessment"] as const;

export type AssessmentOutcome =
  | "confirmed" // an active boot after an upgrade reached multi-user: the upgrade stays
  | "fallback" // a passive boot after a failed upgrade: marked in /run/cos/upgrade_failure
  | "nothing"; // no assessment pending

/**
 * Run once the system reached multi-user (kairos-boot-assessment.service): confirm a trial on
 * an active boot; on a passive boot after a failure, record the failure for `state` and tell
 * GRUB that the fallback works.
 */
export async function assessBoot(
  boot: BootState,
  grubenv: string,
  runDir = "/run/cos",
): Promise<AssessmentOutcome> {
  const env = await readGrubenv(grubenv);
  if (boot === "active_boot" && env.has("boot_assessment")) {
    await updateGrubenv(grubenv, {
      boot_assessment: undefined,
      upgrade_failure: undefined,
      fallback_assessment: undefined,
    });
    return "confirmed";
  }
  if (boot === "passive_boot" && env.get("upgrade_failure") === "1") {
    await mkdir(runDir, { recursive: true });
    await writeFile(
      join(runDir, "upgrade_failure"),
      "the upgraded active image did not reach multi-user; booted the passive image\n",
    );
    if (env.has("fallback_assessment")) await updateGrubenv(grubenv, { fallback_assessment: undefined });
    return "fallback";
  }
  return "nothing";
}
