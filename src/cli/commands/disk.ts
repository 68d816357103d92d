import type { Command } from "commander";
import {
  buildDisk,
  DISK_BOOTS,
  DISK_FORMATS,
  type DiskBoot,
  type DiskBuildResult,
  type DiskFormat,
  loadCloudConfig,
} from "../../artifacts/index.js";
import { KairosError } from "../../sys/index.js";
import { action, type GlobalOptions, globals, output, progressFor, type Register } from "../common.js";
import { abortOnSignals, parseIntOption, resolveRootfs } from "./build.js";

const MIB = 1024 * 1024;
const UNITS: Readonly<Record<string, number>> = {
  "": MIB,
  m: MIB,
  mb: MIB,
  mib: MIB,
  g: 1024 * MIB,
  gb: 1024 * MIB,
  gib: 1024 * MIB,
  t: MIB * MIB,
  tb: MIB * MIB,
  tib: MIB * MIB,
};

/**
 * A size as AuroraBoot takes it: a bare number is MiB (`disk.size=16000`); `M`/`MiB`, `G`/`GiB`
 * and `T`/`TiB` suffixes are accepted too (powers of 1024). Whole MiB only.
 */
export function parseDiskSize(what: string, value: string): number {
  const m = /^\s*(\d+)\s*([a-zA-Z]*)\s*$/.exec(value);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined || Number(m[1]) <= 0) {
    throw new KairosError(
      `${what} '${value}' is not a size`,
      `give MiB (e.g. ${what} 8192) or a size with a unit (8G, 512M)`,
    );
  }
  return Number(m[1]) * unit;
}

interface DiskCliOptions extends GlobalOptions {
  rootfsTar?: string;
  insecure?: boolean;
  overlayRootfs?: string;
  squashfsLevel?: string;
  init?: boolean;
  output: string;
  name?: string;
  format: string;
  boot: string;
  size?: string;
  stateSize?: string;
  recoverySize?: string;
  cloudConfig?: string;
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value)) {
    throw new KairosError(
      `${flag} ${value}: not one of ${allowed.join(", ")}`,
      `for example ${flag} ${allowed[0]}`,
    );
  }
  return value as T;
}

function describeDisk(r: DiskBuildResult): string {
  return [
    `disk:     ${r.file} (${r.format}, ${r.boot}; disk ${(r.diskSize / MIB).toFixed(0)} MiB, file ${(r.fileSize / MIB).toFixed(0)} MiB, ${r.seconds.toFixed(1)} s)`,
    ...r.partitions.map(
      (p) =>
        `  ${p.number} ${p.name.padEnd(15)} ${(p.size / MIB).toFixed(0).padStart(7)} MiB at ${(p.offset / MIB).toFixed(0)} MiB`,
    ),
    `slot:     ${r.slot} (active, passive and recovery)`,
    ...(r.cloudConfig ? [`config:   ${r.cloudConfig} → COS_OEM/90_custom.yaml`] : []),
  ].join("\n");
}

/** `kairos build disk`. */
export const registerDisk: Register = (program) => {
  const build =
    program.commands.find((c) => c.name() === "build") ??
    program.command("build").description("build bootable media from a Kairos (or base) image");
  build
    .command("disk")
    .description(
      "build a disk image that boots straight into the installed system — no root, no loop devices",
    )
    .argument("[IMAGE]", "image reference (as for `kairos build iso`)")
    .option("--rootfs-tar <file>", "use a flattened rootfs tarball instead of an image")
    .option("-o, --output <dir>", "directory for the disk image", ".")
    .option(
      "--name <name>",
      "base name (default: KAIROS_NAME-KAIROS_VERSION from /etc/kairos-release, else 'kairos')",
    )
    .option("--format <format>", `output format: ${DISK_FORMATS.join(", ")}`, "raw")
    .option("--boot <firmware>", `firmware it boots with: ${DISK_BOOTS.join(", ")}`, "hybrid")
    .option(
      "--size <size>",
      "size of the whole disk, MiB or with a unit (8G); COS_PERSISTENT takes the rest (default: just large enough)",
    )
    .option("--state-size <size>", "size of COS_STATE (default: three times the system image + 10% + 64 MiB)")
    .option(
      "--recovery-size <size>",
      "size of COS_RECOVERY (default: three times the system image + 10% + 64 MiB, room for upgrade --recovery)",
    )
    .option("--cloud-config <file>", "validate this #cloud-config and put it on COS_OEM")
    .option("--overlay-rootfs <dir>", "add this directory's files to the system image (owned by root)")
    .option("--squashfs-level <n>", "zstd level of the system image", "3")
    .option("--insecure", "allow plain-HTTP registries")
    .option(
      "--no-init",
      "use a base image as it is (default: apply `kairos init` on the fly to an image without /etc/kairos-release)",
    )
    .action(
      action(async (image: string | undefined, o: DiskCliOptions, cmd: Command) => {
        const g = globals(cmd);
        const progress = progressFor(g);
        const format = oneOf<DiskFormat>("--format", o.format, DISK_FORMATS);
        const boot = oneOf<DiskBoot>("--boot", o.boot, DISK_BOOTS);
        const level = parseIntOption("--squashfs-level", o.squashfsLevel, 1, 22);
        const sizes = {
          disk: o.size !== undefined ? parseDiskSize("--size", o.size) : undefined,
          state: o.stateSize !== undefined ? parseDiskSize("--state-size", o.stateSize) : undefined,
          recovery:
            o.recoverySize !== undefined ? parseDiskSize("--recovery-size", o.recoverySize) : undefined,
        };
        const cloudConfig = o.cloudConfig ? await loadCloudConfig(o.cloudConfig) : undefined;
        const stop = abortOnSignals(progress);
        const src = await resolveRootfs(image, o, stop.signal, progress);
        try {
          const r = await buildDisk({
            rootfs: src.rootfs,
            outDir: o.output,
            name: o.name,
            format,
            boot,
            sizes,
            cloudConfig,
            overlayRootfs: o.overlayRootfs,
            squashfs: { level },
            progress,
            signal: stop.signal,
          });
          output(g, r, () => describeDisk(r));
        } finally {
          stop.dispose();
          await src.close();
        }
      }),
    );
};
