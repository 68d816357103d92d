import { statSync } from "node:fs";
import { resolveSourceReference } from "../oci/index.js";
import { KairosError } from "../sys/index.js";

/**
 * `kairos-agent upgrade --source VALUE` as one of our image references. The rule is AuroraBoot's
 * too (`resolveSourceReference` in src/oci/reference.ts, as upstream both use kairos-sdk's
 * NewSrcFromURI); here only the machine is looked at: `oci:X` is a local layout when X is a
 * directory on this machine.
 */
export function upgradeSourceRef(value: string, isDirectory: (p: string) => boolean = isDir): string {
  if (!value.trim()) throw new KairosError("no upgrade source given", "pass --source oci:HOST/REPO:TAG");
  return resolveSourceReference(value, { isDirectory }).ref;
}

function isDir(p: string): boolean {
  try {
    return statSync(p).isDirectory();
  } catch {
    return false;
  }
}
