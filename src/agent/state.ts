import { readdir, readFile, readlink, realpath, stat } from "node:fs/promises";
import { basename, join } from "node:path";
// The module itself, not factory/index.js: the agent bundle must not pull in the build host.
import { parseOsRelease } from "../factory/os-release.js";
import { nodeUuid, readSystemFacts, type SystemFacts } from "./state-system.js";

/** How this node booted, in upstream kairos-agent's words (kairos-sdk state.Boot). */
export type BootState =
  | "livecd_boot"
  | "active_boot"
  | "passive_boot"
  | "recovery_boot"
  | "autoreset_boot"
  | "unknown";

/** One of the node's partitions, with upstream's keys (kairos-sdk state.PartitionState). */
export interface PartitionState {
  found: boolean;
  mounted: boolean;
  name: string;
  label: string;
  filesystemlabel: string;
  mount_point: string;
  size_bytes: number;
  type: string;
  read_only: boolean;
  uuid: string;
}

/** What `kairos-agent state` reports. */
export interface NodeState {
  /** upstream's node id: `$UUID`, else machine id + "-" + hostname (see state-system.ts). */
  uuid: string;
  boot: BootState;
  oem: PartitionState;
  persistent: PartitionState;
  recovery: PartitionState;
  state: PartitionState;
  /** The early-boot script's own name for the mode (live, netboot, installed, recovery). */
  mode?: string;
  /** Where the live medium is mounted (ISO, netboot), when it is. */
  live_medium?: string;
  /** Set on a passive boot after an upgrade that never confirmed (/run/cos/upgrade_failure). */
  upgrade_failure?: boolean;
  /** flavor, version, init, secureboot (upstream's keys), and every other KAIROS_* field of /etc/kairos-release. */
  kairos: Record<string, string | boolean>;
  /** Node, product (DMI), CPU and network facts, with upstream's (sysinfo's) keys. */
  system: SystemFacts;
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** The boot state from the kernel command line, as upstream's agent decides it. */
export function bootFromCmdline(cmdline: string): BootState {
  if (/\bCOS_ACTIVE\b/.test(cmdline)) return "active_boot";
  if (/\bCOS_PASSIVE\b/.test(cmdline)) return "passive_boot";
  if (/\b(COS_RECOVERY|COS_SYSTEM)\b|recovery-mode/.test(cmdline)) {
    return /(^|\s)kairos\.reset(\s|=|$)/.test(cmdline) ? "autoreset_boot" : "recovery_boot";
  }
  if (/live:(CD)?LABEL|(^|\s)netboot(\s|$)|root=live:/.test(cmdline)) return "livecd_boot";
  return "unknown";
}

interface Mount {
  majmin: string;
  target: string;
  fstype: string;
  source: string;
  options: string;
}

function parseMountinfo(text: string): Mount[] {
  return text
    .split("\n")
    .filter(Boolean)
    .map((l) => {
      const f = l.split(" ");
      const dash = f.indexOf("-");
      return {
        majmin: f[2] ?? "",
        target: (f[4] ?? "").replace(/\\040/g, " "),
        options: f[5] ?? "",
        fstype: f[dash + 1] ?? "",
        source: f[dash + 2] ?? "",
      };
    });
}

const EMPTY: PartitionState = {
  found: false,
  mounted: false,
  name: "",
  label: "",
  filesystemlabel: "",
  mount_point: "",
  size_bytes: 0,
  type: "",
  read_only: false,
  uuid: "",
};

/** A partition found by its filesystem label (udev's /dev/disk/by-label), with its mount from mountinfo. */
async function partitionState(root: string, label: string, mounts: Mount[]): Promise<PartitionState> {
  const link = join(root, "dev/disk/by-label", label);
  const target = await readlink(link).catch(() => undefined);
  if (target === undefined) return { ...EMPTY };
  const dev = basename(await realpath(link).catch(() => target));
  const sys = join(root, "sys/class/block", dev);
  const sectors = Number((await readFile(join(sys, "size"), "utf8").catch(() => "0")).trim());
  const majmin = (await readFile(join(sys, "dev"), "utf8").catch(() => "")).trim();
  // The first mount of the device is its "real" one; later lines are bind mounts of it.
  const m = mounts.find((x) => (majmin && x.majmin === majmin) || x.source === `/dev/${dev}`);
  let uuid = "";
  for (const e of await readdir(join(root, "dev/disk/by-partuuid")).catch(() => [] as string[])) {
    const r = await realpath(join(root, "dev/disk/by-partuuid", e)).catch(() => "");
    if (basename(r) === dev) uuid = e;
  }
  const partName = (await readFile(join(sys, "uevent"), "utf8").catch(() => "")).match(
    /^PARTNAME=(.*)$/m,
  )?.[1];
  return {
    found: true,
    mounted: m !== undefined,
    name: `/dev/${dev}`,
    label: partName ?? "",
    filesystemlabel: label,
    mount_point: m?.target ?? "",
    size_bytes: sectors * 512,
    type: m?.fstype ?? "",
    read_only: m ? m.options.split(",").includes("ro") : false,
    uuid,
  };
}

/**
 * Read the node's state: the boot from the markers the early-boot script leaves in /run/cos
 * (`{live,active,passive,recovery,autoreset}_mode`, as upstream's immucore does) or else the
 * kernel command line (upstream's rule), the COS_* partitions and the identity in
 * /etc/kairos-release. `root` lets tests point at a temporary tree; `env` supplies `UUID`.
 */
export async function readNodeState(root = "/", env: NodeJS.ProcessEnv = process.env): Promise<NodeState> {
  const markers: [string, BootState][] = [
    ["autoreset_mode", "autoreset_boot"],
    ["live_mode", "livecd_boot"],
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
  if (boot === "unknown")
    boot = bootFromCmdline(await readFile(join(root, "proc/cmdline"), "utf8").catch(() => ""));
  const mode =
    (await readFile(join(root, "run/kairos-boot-mode"), "utf8").catch(() => "")).trim() || undefined;
  const release = await readFile(join(root, "etc/kairos-release"), "utf8").catch(() => undefined);
  const fields: Record<string, string> = {};
  if (release !== undefined) {
    for (const [k, v] of parseOsRelease(release, join(root, "etc/kairos-release"))) {
      if (k.startsWith("KAIROS_")) fields[k.slice(7).toLowerCase()] = v;
    }
  }
  const init = (await exists(join(root, "run/systemd/system"))) ? "systemd" : (fields.init ?? "unknown");
  const sb = await readFile(
    join(root, "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"),
  ).catch(() => undefined);
  const kairos: Record<string, string | boolean> = {
    ...fields,
    flavor: fields.flavor ?? "",
    version: fields.version ?? "",
    init,
    secureboot: sb !== undefined && sb.length >= 5 && sb[4] === 1,
  };
  const mounts = parseMountinfo(await readFile(join(root, "proc/self/mountinfo"), "utf8").catch(() => ""));
  const live = join(root, "run/initramfs/live");
  return {
    uuid: await nodeUuid(root, env),
    boot,
    oem: await partitionState(root, "COS_OEM", mounts),
    persistent: await partitionState(root, "COS_PERSISTENT", mounts),
    recovery: await partitionState(root, "COS_RECOVERY", mounts),
    state: await partitionState(root, "COS_STATE", mounts),
    ...(mode ? { mode } : {}),
    ...(boot === "livecd_boot" && (await exists(live)) ? { live_medium: "/run/initramfs/live" } : {}),
    ...((await exists(join(root, "run/cos/upgrade_failure"))) ? { upgrade_failure: true } : {}),
    kairos,
    system: await readSystemFacts(root),
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
