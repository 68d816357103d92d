import { existsSync } from "node:fs";
import { KairosError } from "../sys/index.js";

/**
 * Translate an upgrade source as Kairos users write it into one of our image references.
 *
 * Upstream kairos-agent reads `oci:HOST/REPO:TAG`, `oci://HOST/REPO:TAG`, `docker:…` and a bare
 * `HOST/REPO:TAG` as a registry image; our image engine reads `oci:PATH[:TAG]` as a local OCI
 * layout (skopeo's meaning). The rule that keeps both reachable: `oci:X` is a local layout when
 * X (before an optional `:TAG`) names an existing directory, and a registry image otherwise.
 * Every other transport of ours (docker://, oci-archive:, docker-archive:, docker-daemon:,
 * dir:) passes through unchanged.
 */
export function upgradeSourceRef(value: string, pathExists: (p: string) => boolean = existsSync): string {
  const v = value.trim();
  if (!v) throw new KairosError("no upgrade source given", "pass --source oci:HOST/REPO:TAG");
  if (v.startsWith("oci://")) return `docker://${v.slice("oci://".length)}`;
  if (v.startsWith("docker://")) return v;
  if (v.startsWith("oci:")) {
    const body = v.slice("oci:".length);
    if (localLayoutPath(body, pathExists)) return v;
    return `docker://${body}`;
  }
  if (v.startsWith("docker:")) return `docker://${v.slice("docker:".length)}`;
  if (/^(oci-archive|docker-archive|docker-daemon|dir):/.test(v)) return v;
  if (v.startsWith("file:")) {
    throw new KairosError(
      `upgrade source '${v}': raw image files (upstream's file:) are not supported`,
      "use an image reference (oci:HOST/REPO:TAG, oci-archive:FILE, docker-archive:FILE)",
    );
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(v)) {
    throw new KairosError(
      `upgrade source '${v}' has a transport we do not read`,
      "use oci:HOST/REPO:TAG, docker://…, oci:LAYOUT_DIR, oci-archive:, docker-archive:, docker-daemon: or dir:",
    );
  }
  return `docker://${v}`;
}

/** `PATH` or `PATH:TAG` where PATH exists: a local layout. */
function localLayoutPath(body: string, pathExists: (p: string) => boolean): boolean {
  if (pathExists(body)) return true;
  const colon = body.lastIndexOf(":");
  return colon > 0 && pathExists(body.slice(0, colon));
}
