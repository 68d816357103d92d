import type { Command } from "commander";
import {
  ACCEL_ENV,
  bootIsoHeadless,
  buildIso,
  buildNetbootFiles,
  type IsoBuildResult,
  loadCloudConfig,
  openKairosRootfs,
  type RootfsSource,
  requestedAccel,
  rootfsFromTarFile,
} from "../../artifacts/index.js";
import { KairosError, type Progress } from "../../sys/index.js";
import { action, type GlobalOptions, globals, output, progressFor, type Register } from "../common.js";

interface SourceOptions extends GlobalOptions {
  rootfsTar?: string;
  insecure?: boolean;
  overlayRootfs?: string;
  squashfsLevel?: string;
  /** false with --no-init. */
  init?: boolean;
}

export interface OpenedRootfs {
  rootfs: RootfsSource;
  close(): Promise<void>;
}

/** IMAGE (any transport) or --rootfs-tar FILE, exactly one of them. */
export async function resolveRootfs(
  image: string | undefined,
  o: SourceOptions,
  signal: AbortSignal,
  progress?: Progress,
): Promise<OpenedRootfs> {
  if (image && o.rootfsTar) {
    throw new KairosError("give either IMAGE or --rootfs-tar, not both", "drop one of them");
  }
  if (o.rootfsTar) return { rootfs: await rootfsFromTarFile(o.rootfsTar), close: async () => {} };
  if (!image) {
    throw new KairosError(
      "no image given",
      "pass an image reference (docker://…, oci:DIR, oci-archive:FILE, docker-archive:FILE, docker-daemon:NAME, dir:DIR) or --rootfs-tar FILE",
    );
  }
  // A base image (no /etc/kairos-release) gets `kairos init` applied on the fly.
  const opened = await openKairosRootfs(image, {
    insecure: o.insecure ?? false,
    signal,
    progress,
    init: o.init === false ? "never" : "auto",
  });
  return { rootfs: opened.rootfs, close: opened.close };
}

export function parseIntOption(
  name: string,
  value: string | undefined,
  min: number,
  max: number,
): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new KairosError(
      `${name} '${value}' is not a whole number from ${min} to ${max}`,
      `for example ${name} ${min}`,
    );
  }
  return n;
}

/** An AbortController that fires on the first Ctrl-C / SIGTERM (so temp files get removed). */
export function abortOnSignals(progress?: Progress): { signal: AbortSignal; dispose(): void } {
  const ac = new AbortController();
  const onSig = (s: NodeJS.Signals) => {
    progress?.info(`${s}: stopping, removing partial output`);
    ac.abort(new KairosError(`interrupted by ${s}; nothing was written`));
  };
  process.once("SIGINT", onSig);
  process.once("SIGTERM", onSig);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off("SIGINT", onSig);
      process.off("SIGTERM", onSig);
    },
  };
}

function describeIso(r: IsoBuildResult): string {
  return [
    `iso:      ${r.iso} (${(r.size / 1048576).toFixed(0)} MiB, ${r.seconds.toFixed(1)} s)`,
    `sha256:   ${r.sha256}  (${r.checksumFile})`,
    `kernel:   ${r.imageKernel}`,
    `initrd:   ${r.imageInitrd}`,
    ...(r.cloudConfig ? [`config:   ${r.cloudConfig} → /config.yaml on the ISO`] : []),
    `boot it:  qemu-system-x86_64 -m 2048 -drive if=virtio,media=disk,format=raw,file=${r.iso}`,
  ].join("\n");
}

interface IsoCliOptions extends SourceOptions {
  output: string;
  name?: string;
  cloudConfig?: string;
  overlayIso?: string;
  label?: string;
  grubTimeout?: string;
  cmdline?: string;
  boot?: string | boolean;
  accel?: string;
}

interface NetbootCliOptions extends SourceOptions {
  output: string;
  name?: string;
  cloudConfig?: string;
  baseUrl?: string;
  cmdline?: string;
}

/** `kairos build iso` and `kairos build netboot-files`. */
export const registerBuild: Register = (program) => {
  // Find-or-create: other modules may add their own `kairos build <medium>` subcommands.
  const build =
    program.commands.find((c) => c.name() === "build") ??
    program.command("build").description("build bootable media from a Kairos (or base) image");

  build
    .command("iso")
    .description("build a hybrid BIOS/UEFI live ISO (CD, USB stick, or disk) — no root, no loop devices")
    .argument(
      "[IMAGE]",
      "image reference: docker://REF, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE, docker-daemon:NAME, dir:DIR",
    )
    .option("--rootfs-tar <file>", "use a flattened rootfs tarball instead of an image")
    .option("-o, --output <dir>", "directory for the ISO and its .sha256", ".")
    .option(
      "--name <name>",
      "ISO base name (default: KAIROS_NAME-KAIROS_VERSION from /etc/kairos-release, else 'kairos')",
    )
    .option("--cloud-config <file>", "validate this #cloud-config and put it on the ISO as /config.yaml")
    .option("--overlay-iso <dir>", "add this directory's files at the ISO root")
    .option("--overlay-rootfs <dir>", "add this directory's files to the live rootfs (owned by root)")
    .option("--label <label>", "ISO volume label", "COS_LIVE")
    .option("--grub-timeout <seconds>", "GRUB menu timeout", "5")
    .option("--cmdline <args>", "extra kernel arguments for every menu entry")
    .option("--squashfs-level <n>", "zstd level of rootfs.squashfs", "3")
    .option("--insecure", "allow plain-HTTP registries")
    .option(
      "--no-init",
      "use a base image as it is (default: apply `kairos init` on the fly to an image without /etc/kairos-release)",
    )
    .option(
      "--boot [firmware]",
      "then boot the ISO headless in QEMU (bios or uefi, default bios), showing the console until a login prompt",
    )
    .option(
      "--accel <mode>",
      `QEMU accelerator for --boot: auto (KVM if a probe boot shows it runs the kernel, else software emulation), kvm or tcg (default: $${ACCEL_ENV}, else auto)`,
    )
    .action(
      action(async (image: string | undefined, o: IsoCliOptions, cmd: Command) => {
        const g = globals(cmd);
        const progress = progressFor(g);
        const level = parseIntOption("--squashfs-level", o.squashfsLevel, 1, 22);
        const timeout = parseIntOption("--grub-timeout", o.grubTimeout, 0, 3600);
        const firmware = o.boot === undefined || o.boot === true ? "bios" : o.boot;
        if (firmware !== "bios" && firmware !== "uefi") {
          throw new KairosError(`--boot ${firmware}: unknown firmware`, "use --boot bios or --boot uefi");
        }
        if (o.accel !== undefined && o.boot === undefined) {
          throw new KairosError("--accel only applies to --boot", "add --boot, or drop --accel");
        }
        // Before the build: a bad --accel or $KAIROS_ACCEL must not cost a whole ISO first.
        const accel = o.boot !== undefined ? requestedAccel(o.accel) : undefined;
        // Cheap checks first: a bad cloud-config fails before the image is even opened.
        const cloudConfig = o.cloudConfig ? await loadCloudConfig(o.cloudConfig) : undefined;
        const stop = abortOnSignals(progress);
        const src = await resolveRootfs(image, o, stop.signal, progress);
        try {
          const r = await buildIso({
            rootfs: src.rootfs,
            outDir: o.output,
            name: o.name,
            cloudConfig,
            overlayIso: o.overlayIso,
            overlayRootfs: o.overlayRootfs,
            label: o.label,
            grub: { timeout, extraCmdline: o.cmdline },
            squashfs: { level },
            progress,
            signal: stop.signal,
          });
          if (o.boot !== undefined) {
            progress.info(`booting ${r.iso} headless in QEMU (${firmware}, no network); console follows`);
            const b = await bootIsoHeadless({
              iso: r.iso,
              firmware,
              console: process.stderr,
              signal: stop.signal,
              accel,
              // Not a progress line: it says why the boot is slow, so --quiet keeps it.
              onNote: (line) => process.stderr.write(`${line}\n`),
            });
            progress.info(
              `\nthe system is up (login prompt after ${b.seconds.toFixed(0)} s, ${b.accel}); guest powered off`,
            );
          }
          output(g, r, () => describeIso(r));
        } finally {
          stop.dispose();
          await src.close();
        }
      }),
    );

  build
    .command("netboot-files")
    .description("build the kernel, initrd, rootfs squashfs and kernel command line for network boot")
    .argument("[IMAGE]", "image reference (as for `kairos build iso`)")
    .option("--rootfs-tar <file>", "use a flattened rootfs tarball instead of an image")
    .option("-o, --output <dir>", "directory for the files", ".")
    .option("--name <name>", "file name prefix", "kairos")
    .option("--base-url <url>", "URL the squashfs will be served from", "http://{{ server }}:8080")
    .option("--cmdline <args>", "extra kernel arguments")
    .option(
      "--cloud-config <file>",
      "validate this #cloud-config and write it beside the files as config.yaml",
    )
    .option("--overlay-rootfs <dir>", "add this directory's files to the live rootfs (owned by root)")
    .option("--squashfs-level <n>", "zstd level of the squashfs", "3")
    .option("--insecure", "allow plain-HTTP registries")
    .option(
      "--no-init",
      "use a base image as it is (default: apply `kairos init` on the fly to an image without /etc/kairos-release)",
    )
    .action(
      action(async (image: string | undefined, o: NetbootCliOptions, cmd: Command) => {
        const g = globals(cmd);
        const progress = progressFor(g);
        const level = parseIntOption("--squashfs-level", o.squashfsLevel, 1, 22);
        const stop = abortOnSignals(progress);
        const src = await resolveRootfs(image, o, stop.signal, progress);
        try {
          const r = await buildNetbootFiles({
            rootfs: src.rootfs,
            outDir: o.output,
            name: o.name,
            baseUrl: o.baseUrl,
            extraCmdline: o.cmdline,
            cloudConfigFile: o.cloudConfig,
            overlayRootfs: o.overlayRootfs,
            squashfs: { level },
            progress,
            signal: stop.signal,
          });
          output(g, r, () =>
            [
              `kernel:   ${r.kernel}`,
              `initrd:   ${r.initrd}`,
              `squashfs: ${r.squashfs}`,
              `cmdline:  ${r.cmdline}  (${r.cmdlineFile})`,
              ...(r.config ? [`config:   ${r.config}`] : []),
            ].join("\n"),
          );
        } finally {
          stop.dispose();
          await src.close();
        }
      }),
    );
};
