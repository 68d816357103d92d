/**
 * AuroraBoot's disk keys (`disk.efi`, `disk.bios`, `disk.raw`, `disk.gce`, `disk.vhd`,
 * `disk.size`, `disk.state_size`, `disk.recovery_image_size`) on top of `kairos build disk`.
 * Kept apart from auroraboot.ts so the key table there only grows by one spread.
 */
import {
  buildDisk,
  type DiskBoot,
  type DiskBuildResult,
  type DiskFormat,
  type MediaCloudConfig,
  type RootfsSource,
} from "../../artifacts/index.js";
import { serveDirectory, serveUntilStopped } from "../../netboot/http.js";
import { KairosError, type Progress } from "../../sys/index.js";
import { parseDiskSize } from "./disk.js";

/** The disk keys and their defaults (sizes in MB, as AuroraBoot takes them; unset = computed). */
export const AURORABOOT_DISK_KEYS: Readonly<Record<string, string | undefined>> = {
  "disk.efi": "false",
  "disk.bios": "false",
  "disk.raw": "false",
  "disk.gce": "false",
  "disk.vhd": "false",
  "disk.size": undefined,
  "disk.state_size": undefined,
  "disk.recovery_image_size": undefined,
};

/** What each boolean key builds, and the suffix of its file name. */
const TARGETS: ReadonlyArray<{ key: string; format: DiskFormat; boot: DiskBoot; suffix: string }> = [
  { key: "disk.raw", format: "raw", boot: "hybrid", suffix: "" },
  { key: "disk.efi", format: "raw", boot: "efi", suffix: "-efi" },
  { key: "disk.bios", format: "raw", boot: "bios", suffix: "-bios" },
  { key: "disk.gce", format: "gce", boot: "hybrid", suffix: "" },
  { key: "disk.vhd", format: "vhd", boot: "hybrid", suffix: "" },
];

export interface AuroraBootDiskPlan {
  targets: Array<{ key: string; format: DiskFormat; boot: DiskBoot; suffix: string }>;
  sizes: { disk?: number; state?: number; recovery?: number };
}

function bool(key: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return true;
  if (["false", "0", "no", "off", ""].includes(v)) return false;
  throw new KairosError(`--set ${key}=${value}: not a boolean`, `use ${key}=true or ${key}=false`);
}

/** The disks the `--set` pairs ask for (last value of a key wins); undefined when none. */
export function auroraBootDiskPlan(sets: readonly string[]): AuroraBootDiskPlan | undefined {
  const values = new Map<string, string>();
  for (const s of sets) {
    const eq = s.indexOf("=");
    const key = s.slice(0, eq).trim();
    if (eq > 0 && key in AURORABOOT_DISK_KEYS) values.set(key, s.slice(eq + 1));
  }
  const targets = TARGETS.filter((t) => bool(t.key, values.get(t.key) ?? "false"));
  const size = (key: string) => {
    const v = values.get(key);
    return v === undefined || v.trim() === "" ? undefined : parseDiskSize(`--set ${key}`, v);
  };
  const sizes = {
    disk: size("disk.size"),
    state: size("disk.state_size"),
    recovery: size("disk.recovery_image_size"),
  };
  if (targets.length === 0) {
    const stray = ["disk.size", "disk.state_size", "disk.recovery_image_size"].filter((k) => values.has(k));
    if (stray.length) {
      throw new KairosError(
        `--set ${stray.join(", ")} given without a disk to build`,
        "add --set disk.raw=true (or disk.efi, disk.bios, disk.gce, disk.vhd)",
      );
    }
    return undefined;
  }
  return { targets, sizes };
}

/** Build every requested disk into `stateDir` as NAME[-efi|-bios].raw, NAME.raw.tar.gz, NAME.vhd. */
export async function buildAuroraBootDisks(p: {
  plan: AuroraBootDiskPlan;
  /** One source per disk: each build streams the image again. */
  rootfs: () => Promise<{ rootfs: RootfsSource; close(): Promise<void> }>;
  stateDir: string;
  name?: string;
  cloudConfig?: MediaCloudConfig;
  overlayRootfs?: string;
  progress: Progress;
  signal: AbortSignal;
}): Promise<DiskBuildResult[]> {
  const results: DiskBuildResult[] = [];
  for (const t of p.plan.targets) {
    p.progress.info(`Generating ${t.key} disk image (${t.format}, ${t.boot}) in ${p.stateDir}`);
    const src = await p.rootfs();
    try {
      const r = await buildDisk({
        rootfs: src.rootfs,
        outDir: p.stateDir,
        format: t.format,
        boot: t.boot,
        name: p.name === undefined ? undefined : `${p.name}${t.suffix}`,
        nameSuffix: p.name === undefined ? t.suffix : undefined,
        sizes: p.plan.sizes,
        cloudConfig: p.cloudConfig,
        overlayRootfs: p.overlayRootfs,
        progress: p.progress,
        signal: p.signal,
      });
      results.push(r);
      p.progress.info(`Assembled final disk image target=${r.file}`);
    } finally {
      await src.close();
    }
  }
  return results;
}

/** Serve `stateDir` over HTTP until Ctrl-C, as AuroraBoot does after a build. */
export async function serveStateDir(stateDir: string, listen: string, progress: Progress): Promise<void> {
  const server = await serveDirectory({
    root: stateDir,
    listen,
    onRequest: (line) => progress.info(`http: ${line}`),
  });
  progress.info(`Serving ${stateDir} on ${server.url} (listening on ${server.address}); Ctrl-C to stop`);
  const why = await serveUntilStopped(server);
  progress.info(`http server stopped (${why})`);
}
