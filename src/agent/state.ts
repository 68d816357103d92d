import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { parseOsRelease } from "../factory/os-release.js";

/** How this node booted, in upstream kairos-agent's words. */
export type BootState =
  | "live_boot"
  | "active_boot"
  | "passive_boot"
  | "recovery_boot"
  | "autoreset_boot"
  | "unknown";

/** What `kairos-agent state` reports. */
export interface NodeState {
  boot: BootState;
  /** The early-boot script's own name for the mode (live, netboot, active, passive, recovery). */
  mode?: string;
  /** Where the live medium is mounted (ISO, netboot), when it is. */
  live_medium?: string;
  /** KAIROS_* fields of /etc/kairos-release, without the prefix, lower-cased. */
  kairos: Record<string, string>;
  /** Set on a fallback boot after an upgrade that did not boot (/run/cos/upgrade_failure). */
  upgrade_failure?: boolean;
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/**
 * Read the node's state from the markers the early-boot script leaves in /run
 * (`/run/cos/{live,active,passive,recovery}_mode`, as upstream's immucore does, and
 * `/run/kairos-boot-mode`) and the identity in /etc/kairos-release. `root` lets tests point
 * at a temporary tree.
 */
export async function readNodeState(root = "/"): Promise<NodeState> {
  const markers: [string, BootState][] = [
    ["live_mode", "live_boot"],
    ["recovery_mode", "recovery_boot"],
    ["passive_mode", "passive_boot"],
    ["active_mode", "active_boot"],
  ];
  let boot: BootState = "unknown";
  for (const [file, state] of markers) {
    if (await exists(join(root, "run/cos", file))) {
      boot = state;
      break;
    }
  }
  // The statereset entry boots recovery with kairos.reset: upstream calls that boot autoreset_boot.
  if (boot === "recovery_boot") {
    const cmdline = await readFile(join(root, "proc/cmdline"), "utf8").catch(() => "");
    if (/(^|\s)kairos\.reset(\s|=|$)/.test(cmdline)) boot = "autoreset_boot";
  }
  const mode =
    (await readFile(join(root, "run/kairos-boot-mode"), "utf8").catch(() => "")).trim() || undefined;
  const kairos: Record<string, string> = {};
  const release = await readFile(join(root, "etc/kairos-release"), "utf8").catch(() => undefined);
  if (release !== undefined) {
    for (const [k, v] of parseOsRelease(release, join(root, "etc/kairos-release"))) {
      if (k.startsWith("KAIROS_")) kairos[k.slice(7).toLowerCase()] = v;
    }
  }
  const live = join(root, "run/initramfs/live");
  return {
    boot,
    ...(mode ? { mode } : {}),
    ...(boot === "live_boot" && (await exists(live)) ? { live_medium: "/run/initramfs/live" } : {}),
    kairos,
    ...((await exists(join(root, "run/cos/upgrade_failure"))) ? { upgrade_failure: true } : {}),
  };
}

/** A field of the state by dotted path (`boot`, `kairos.version`), as `kairos-agent state get`. */
export function stateField(state: NodeState, path: string): unknown {
  let v: unknown = state;
  for (const part of path.split(".")) {
    if (v === null || typeof v !== "object" || !(part in v)) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}
