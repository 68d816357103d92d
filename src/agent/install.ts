/**
 * `kairos-agent install`: partition a disk with the layout of src/disk, copy the live
 * system's image into one slot on COS_STATE (active and passive both name it) and one on
 * COS_RECOVERY, install GRUB for BIOS and UEFI, copy the user's cloud-config to COS_OEM and
 * run the install stages. docs/lifecycle.md is the contract. Every check runs before the
 * first byte is written.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import type { GrubTools } from "../artifacts/disk-boot.js";
import {
  layoutFromConfig,
  type PlacedPartition,
  placeLayout,
  requireSectorSize512,
  writeLayout,
} from "../disk/index.js";
import { KairosError, run } from "../sys/index.js";
import { formatGrubenv } from "./grubenv.js";
import { type Disk, REAL_SYSTEM, resolveInstallDevice, type SystemPaths } from "./install-disks.js";
import { findGrubTools, installGrubImages, loadGrubCfg } from "./install-grub.js";
import { pointLink, writeSlot } from "./slots.js";
import { expandStage, runStage, stepsOf } from "./stages/index.js";

/** Where the live medium is mounted, and its files (upstream's paths). */
export const LIVE_DIR = "/run/initramfs/live";

/** Mount points of the new system's partitions during the install (upstream's /run/cos/*). */
export const INSTALL_MOUNTS: Readonly<Record<string, string>> = {
  efi: "/run/cos/efi",
  oem: "/run/cos/oem",
  recovery: "/run/cos/recovery",
  state: "/run/cos/state",
  persistent: "/run/cos/persistent",
};

/** Slack on COS_STATE besides its three slots (grub.cfg, state files), MiB. */
const STATE_SLACK_MIB = 32;

export interface InstallSource {
  image: string;
  kernel: string;
  initrd: string;
  bytes: number;
}

/** The system to install: the live medium's rootfs.squashfs, its kernel and initrd (or the running image's /boot). */
export async function liveSource(root = "/"): Promise<InstallSource> {
  const live = join(root, LIVE_DIR);
  const image = join(live, "rootfs.squashfs");
  if (!existsSync(image)) {
    throw new KairosError(
      `no ${LIVE_DIR}/rootfs.squashfs: install runs on a live system (ISO or netboot)`,
      "boot the Kairos ISO and run the install there; an installed node upgrades with `kairos-agent upgrade`",
    );
  }
  const pick = (...c: string[]) => c.find((p) => existsSync(p));
  const kernel = pick(join(live, "boot/kernel"), join(root, "boot/vmlinuz"));
  const initrd = pick(join(live, "boot/initrd"), join(root, "boot/initrd"));
  if (!kernel || !initrd) {
    throw new KairosError(
      "cannot find the kernel and initrd to install",
      `looked for ${LIVE_DIR}/boot/{kernel,initrd} and /boot/{vmlinuz,initrd}`,
    );
  }
  let bytes = 0;
  for (const f of [image, kernel, initrd]) bytes += (await stat(f)).size;
  return { image, kernel, initrd, bytes };
}

export interface InstallOptions {
  /** The merged config the install follows (its `install:` section, users, stages). */
  config: Record<string, unknown>;
  /** The user's cloud-config written to COS_OEM as 90_custom.yaml (default: `config`). */
  oemConfig?: string;
  /** Overrides install.device. */
  device?: string;
  reboot?: boolean;
  poweroff?: boolean;
  log?: (line: string) => void;
  paths?: SystemPaths;
}

export interface InstallPlan {
  disk: Disk;
  partitions: PlacedPartition[];
  source: InstallSource;
  /** COS_OEM:/grubenv as the install writes it: the config's grub_options. */
  grubenv: Buffer;
  /** The image's GRUB and its installed menu (found before anything is written). */
  grub: { tools: GrubTools; cfg: string };
}

/**
 * The GRUB environment the install writes to COS_OEM: `install.grub_options`, then the
 * top-level `grub_options` over it (upstream writes the first after the install and the second
 * at the first boot, so the top-level one wins). Values are strings; numbers and booleans are
 * taken as written. Refused (before anything is written) when a name is not a GRUB variable
 * name or the block would not fit.
 */
export function installGrubenv(config: Record<string, unknown>): Buffer {
  const vars = new Map<string, string>();
  const install = (config.install ?? {}) as Record<string, unknown>;
  for (const [where, opts] of [
    ["install.grub_options", install.grub_options],
    ["grub_options", config.grub_options],
  ] as const) {
    if (opts === undefined || opts === null) continue;
    if (typeof opts !== "object" || Array.isArray(opts))
      throw new KairosError(
        `${where} must be a map of GRUB variables`,
        'e.g. extra_cmdline: "console=ttyS0"',
      );
    for (const [k, v] of Object.entries(opts as Record<string, unknown>)) {
      if (typeof v !== "string" && typeof v !== "number" && typeof v !== "boolean") {
        throw new KairosError(`${where}.${k} must be a string`, "quote the value in the cloud-config");
      }
      vars.set(k, String(v));
    }
  }
  return formatGrubenv(vars, "COS_OEM:/grubenv (grub_options)");
}

const mib = (b: number) => Math.ceil(b / (1024 * 1024));

/** Everything the install checks before writing: the device, the layout on it, the source fits. */
export async function planInstall(opts: InstallOptions): Promise<InstallPlan> {
  const install = (opts.config.install ?? {}) as Record<string, unknown>;
  const layout = layoutFromConfig(install);
  customMountsConfig(install);
  const grubenv = installGrubenv(opts.config);
  const disk = await resolveInstallDevice(
    opts.device ?? (install.device as string | undefined),
    opts.paths ?? REAL_SYSTEM,
  );
  const partitions = placeLayout(layout, disk.bytes, disk.device);
  await requireSectorSize512(disk.device, (opts.paths ?? REAL_SYSTEM).sys);
  const grub = { tools: findGrubTools(), cfg: await loadGrubCfg() };
  const source = await liveSource();
  const slot = mib(source.bytes) + 1;
  const state = partitions.find((p) => p.role === "state")!;
  const recovery = partitions.find((p) => p.role === "recovery")!;
  const stateNeed = 3 * slot + STATE_SLACK_MIB;
  if (state.placedMiB < stateNeed) {
    throw new KairosError(
      `COS_STATE (${state.placedMiB} MiB) cannot hold three system slots of ${slot} MiB (active, passive, one upgrade)`,
      `set install.partitions.state.size to at least ${stateNeed} (MiB)`,
    );
  }
  if (recovery.placedMiB < slot + 8) {
    throw new KairosError(
      `COS_RECOVERY (${recovery.placedMiB} MiB) cannot hold the ${slot} MiB recovery system`,
      `set install.partitions.recovery.size to at least ${slot + 8} (MiB)`,
    );
  }
  return { disk, partitions, source, grubenv, grub };
}

/**
 * Mount the new partitions, side by side (their mount points are siblings, none inside
 * another). When one mount fails, the others are unmounted again before the error is thrown.
 */
async function mountAll(nodes: Map<string, string>): Promise<string[]> {
  const done: string[] = [];
  const work = Object.entries(INSTALL_MOUNTS).map(async ([name, dir]) => {
    const dev = nodes.get(name);
    if (!dev) return;
    await mkdir(dir, { recursive: true });
    await run("mount", [dev, dir]);
    done.push(dir);
  });
  try {
    await settleAll(work);
  } catch (err) {
    await umountAll(done);
    throw err;
  }
  return done;
}

/**
 * Unmount `dirs`, last mounted first; `parallel` for siblings (the install's partitions),
 * where each umount's write-back of its own filesystem can overlap the others'.
 */
async function umountAll(dirs: readonly string[], parallel = false): Promise<void> {
  const one = (d: string) => run("umount", [d]).catch(() => run("umount", ["-l", d]));
  if (parallel) {
    await settleAll(dirs.map(one));
    return;
  }
  for (const d of [...dirs].reverse()) await one(d);
}

/**
 * GRUB for BIOS and UEFI (./install-grub.ts), then a UEFI boot entry when the node booted
 * under UEFI. (planInstall refused a disk whose sectors are not 512 bytes.)
 */
async function installGrub(plan: InstallPlan, log: (l: string) => void): Promise<void> {
  const { device } = plan.disk;
  const { partitions } = plan;
  const biosPart = partitions.find((p) => p.role === "bios");
  const workDir = await mkdtemp(join(tmpdir(), "kairos-grub-"));
  try {
    await installGrubImages(
      {
        device,
        bios: biosPart && { firstLba: biosPart.startMiB * 2048, sectors: biosPart.placedMiB * 2048 },
        stateDir: INSTALL_MOUNTS.state!,
        efiDir: INSTALL_MOUNTS.efi!,
        grubCfg: plan.grub.cfg,
        workDir,
        tools: plan.grub.tools,
      },
      log,
    );
  } finally {
    await rm(workDir, { recursive: true, force: true });
  }
  const efiPart = partitions.find((p) => p.role === "efi");
  if (efiPart && existsSync("/sys/firmware/efi/efivars")) {
    await run("efibootmgr", [
      "-c",
      "-d",
      device,
      "-p",
      String(efiPart.number),
      "-L",
      "Kairos",
      "-l",
      "\\EFI\\BOOT\\BOOTX64.EFI",
    ]).then(
      () => log("UEFI boot entry 'Kairos' created"),
      (err: unknown) =>
        log(
          `warning: no UEFI boot entry (efibootmgr failed: ${(err as Error).message}); EFI/BOOT/BOOTX64.EFI boots by default`,
        ),
    );
  }
}

/** Run a stage against the new system: its image under a throwaway overlay, with /oem and /usr/local from the disk. */
async function runChrootStage(
  stage: string,
  config: Record<string, unknown>,
  log: (l: string) => void,
): Promise<void> {
  // The stage runs the install config's steps only (runStage is given `config`), so with none
  // there is nothing to chroot into: the eight mounts and unmounts it would take cost ~3 s of
  // an install under emulation, each a process start.
  if (!expandStage(stage).some((name) => stepsOf(config, name).length > 0)) {
    log(`stage ${stage}: 0 step(s) in the install config, no chroot needed`);
    return;
  }
  const base = "/run/cos/active";
  const top = "/run/cos/transition";
  const scratch = "/run/cos/transition-rw";
  const mounted: string[] = [];
  const m = async (args: string[], target: string) => {
    await mkdir(target, { recursive: true });
    await run("mount", [...args, target]);
    mounted.push(target);
  };
  try {
    await m(["-o", "ro,loop", join(INSTALL_MOUNTS.state!, "cOS", "active.img")], base);
    await m(["-t", "tmpfs", "tmpfs"], scratch);
    await mkdir(join(scratch, "upper"), { recursive: true });
    await mkdir(join(scratch, "work"), { recursive: true });
    await m(
      [
        "-t",
        "overlay",
        "overlay",
        "-o",
        `lowerdir=${base},upperdir=${scratch}/upper,workdir=${scratch}/work`,
      ],
      top,
    );
    for (const d of ["dev", "proc", "sys"]) await m(["--bind", `/${d}`], join(top, d));
    await m(["--bind", INSTALL_MOUNTS.oem!], join(top, "oem"));
    await m(["--bind", INSTALL_MOUNTS.persistent!], join(top, "usr/local"));
    await runStage(stage, { root: top, config, log });
  } finally {
    await umountAll(mounted);
  }
}

/**
 * Wait for every promise, then throw the first failure: nothing may still be writing when the
 * caller unmounts the partitions (Promise.all would return at the first rejection).
 */
async function settleAll(work: Promise<unknown>[]): Promise<void> {
  const failed = (await Promise.allSettled(work)).find((r) => r.status === "rejected");
  if (failed) throw (failed as PromiseRejectedResult).reason;
}

/** Install to disk. Returns the plan it carried out. */
export async function install(opts: InstallOptions): Promise<InstallPlan> {
  const log = opts.log ?? ((l: string) => process.stdout.write(`${l}\n`));
  const config = opts.config;
  const install = (config.install ?? {}) as Record<string, unknown>;
  const plan = await planInstall(opts);
  log(`installing to ${plan.disk.device} (${mib(plan.disk.bytes)} MiB) from ${plan.source.image}`);
  await runStage("before-install", { config, log });

  const nodes = await writeLayout(plan.disk.device, plan.partitions, log);
  const mounted = await mountAll(nodes);
  try {
    const meta = { source: `file:${plan.source.image}`, version: await kairosVersion() };
    const src = { image: plan.source.image, kernel: plan.source.kernel, initrd: plan.source.initrd, meta };
    const stateCos = join(INSTALL_MOUNTS.state!, "cOS");
    // The two slot copies (disk-bound) and GRUB (CPU-bound) run side by side: the floor they
    // are measured against, cp of the same files and one sync, lets write-back overlap too.
    const recCos = join(INSTALL_MOUNTS.recovery!, "cOS");
    const system = async () => {
      log("copying the system image to COS_STATE (active and passive)");
      const id = await writeSlot(stateCos, src);
      await pointLink(stateCos, "active", `slots/${id}`);
      await pointLink(stateCos, "passive", `slots/${id}`);
      await pointLink(stateCos, "active.img", "active/system.img");
      await pointLink(stateCos, "passive.img", "passive/system.img");
    };
    const recovery = async () => {
      log("copying the recovery system to COS_RECOVERY");
      const rid = await writeSlot(recCos, src);
      await pointLink(recCos, "recovery", `slots/${rid}`);
      await pointLink(recCos, "recovery.img", "recovery/system.img");
    };
    await settleAll([system(), recovery(), installGrub(plan, log)]);
    await writeFile(join(INSTALL_MOUNTS.oem!, "grubenv"), plan.grubenv);
    const oemText = opts.oemConfig ?? `#cloud-config\n${stringify(config)}`;
    await writeFile(join(INSTALL_MOUNTS.oem!, "90_custom.yaml"), oemText, { mode: 0o600 });
    log("cloud-config written to COS_OEM as 90_custom.yaml");
    const mounts = customMountsConfig(install);
    if (mounts) {
      await writeFile(join(INSTALL_MOUNTS.oem!, "91_custom_mounts.yaml"), mounts, { mode: 0o644 });
      log("install.bind_mounts / install.ephemeral_mounts written to COS_OEM as 91_custom_mounts.yaml");
    }

    await runChrootStage("after-install-chroot", config, log);
    log("Running after-install hook");
    await runStage("after-install", { config, log });
    await run("sync", []);
  } finally {
    await umountAll(mounted, true);
  }
  log(`Installation finished on ${plan.disk.device}`);
  const poweroff = opts.poweroff ?? install.poweroff === true;
  const reboot = opts.reboot ?? install.reboot === true;
  if (poweroff || reboot) {
    log(poweroff ? "powering off" : "rebooting");
    await run("systemctl", [poweroff ? "poweroff" : "reboot"]);
  }
  return plan;
}

function pathList(v: unknown, key: string): string[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) || v.some((p) => typeof p !== "string" || !/^\/[^\s"'$`\\]*$/.test(p))) {
    throw new KairosError(`install.${key} must be a list of absolute paths without spaces or quotes`);
  }
  return v.map((p: string) => p.replace(/\/+$/, "") || "/");
}

/**
 * The COS_OEM config that makes `install.bind_mounts` / `install.ephemeral_mounts` take
 * effect at every boot: a rootfs step writing CUSTOM_BIND_MOUNTS / CUSTOM_EPHEMERAL_MOUNTS to
 * /run/cos/custom-layout.env (upstream's file and names), which the early-boot script adds to
 * the layout. Undefined when neither is set.
 */
export function customMountsConfig(install: Record<string, unknown>): string | undefined {
  const bind = pathList(install.bind_mounts, "bind_mounts");
  const eph = pathList(install.ephemeral_mounts, "ephemeral_mounts");
  if (!bind.length && !eph.length) return undefined;
  const cfg = {
    name: "install.bind_mounts and install.ephemeral_mounts (written by kairos-agent install)",
    stages: {
      rootfs: [
        {
          name: "Custom mounts",
          environment_file: "/run/cos/custom-layout.env",
          environment: { CUSTOM_BIND_MOUNTS: bind.join(" "), CUSTOM_EPHEMERAL_MOUNTS: eph.join(" ") },
        },
      ],
    },
  };
  return `#cloud-config\n${stringify(cfg)}`;
}

async function kairosVersion(): Promise<string | undefined> {
  const rel = await readFile("/etc/kairos-release", "utf8").catch(() => "");
  return /^KAIROS_VERSION="?([^"\n]*)"?/m.exec(rel)?.[1];
}
