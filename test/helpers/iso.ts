import { run } from "../../src/sys/index.js";

/** Copy one file out of an ISO image with xorriso (no mount, no loop device). */
export async function extractFromIso(iso: string, path: string, dest: string): Promise<void> {
  await run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", path, dest]);
}
