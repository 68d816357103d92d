import { existsSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import { buildNetbootFiles, checkIsoName, loadCloudConfig } from "../../artifacts/index.js";
import {
  DEFAULT_IPXE_DIR,
  DEFAULT_NETBOOT_HTTP_PORT,
  type NetbootFileSet,
  parseDhcpRange,
  type RunningNetbootServer,
  startNetbootServer,
} from "../../netboot/index.js";
import { KairosError, type Progress } from "../../sys/index.js";
import { action, type GlobalOptions, globals, progressFor, type Register } from "../common.js";
import { abortOnSignals, parseIntOption, resolveRootfs } from "./build.js";

/** The netboot files `kairos build netboot-files` writes into `dir` with prefix `name`, if all are there. */
export function existingNetbootFiles(dir: string, name: string): NetbootFileSet | undefined {
  const f = {
    kernel: join(dir, `${name}-kernel`),
    initrd: join(dir, `${name}-initrd`),
    squashfs: join(dir, `${name}.squashfs`),
  };
  if (!Object.values(f).every((p) => existsSync(p))) return undefined;
  const config = join(dir, "config.yaml");
  return { ...f, config: existsSync(config) ? config : undefined };
}

export interface NetbootServeSettings {
  files: NetbootFileSet;
  cmdline?: string;
  address?: string;
  iface?: string;
  httpPort?: number;
  tftpPort?: number;
  dhcpPort?: number;
  pxePort?: number;
  dhcpRange?: string;
  ipxeDir?: string;
  maxTransfers?: number;
}

/** Start the PXE server and say where it is (AuroraBoot's netboot step uses this too). */
export async function startNetboot(
  s: NetbootServeSettings,
  progress: Progress,
): Promise<RunningNetbootServer> {
  const range = s.dhcpRange ? parseDhcpRange(s.dhcpRange) : undefined;
  const srv = await startNetbootServer({
    files: s.files,
    cmdline: s.cmdline,
    address: s.address,
    iface: s.iface,
    httpPort: s.httpPort,
    tftpPort: s.tftpPort,
    dhcpPort: s.dhcpPort,
    pxePort: s.pxePort,
    dhcpRange: range,
    ipxeDir: s.ipxeDir,
    maxTransfers: s.maxTransfers,
    log: (line) => progress.info(`netboot: ${line}`),
  });
  progress.info(
    `netboot: ${range ? `DHCP server for ${range.start}-${range.end}` : "ProxyDHCP (addresses come from your DHCP server)"} on ${srv.serverIp}, boots ${srv.firmwares.join(", ")}; HTTP ${srv.httpUrl}; TFTP port ${srv.tftp.port}; DHCP ports ${srv.dhcp.dhcpPort},${srv.dhcp.pxePort}`,
  );
  progress.info(`netboot: kernel command line: ${srv.cmdline}`);
  progress.info("netboot: ready; Ctrl-C to stop");
  return srv;
}

/** Resolve once on SIGINT/SIGTERM (or `signal`), with the reason. */
export function waitForStop(signal?: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const done = (why: string) => {
      process.off("SIGINT", onSig);
      process.off("SIGTERM", onSig);
      resolve(why);
    };
    const onSig = (s: NodeJS.Signals) => done(s);
    process.once("SIGINT", onSig);
    process.once("SIGTERM", onSig);
    if (signal?.aborted) done("abort");
    signal?.addEventListener("abort", () => done("abort"), { once: true });
  });
}

interface NetbootCliOptions extends GlobalOptions {
  rootfsTar?: string;
  name: string;
  stateDir?: string;
  cloudConfig?: string;
  cmdline?: string;
  listenAddr?: string;
  interface?: string;
  httpPort: string;
  tftpPort: string;
  dhcpPort: string;
  pxePort: string;
  dhcpRange?: string;
  ipxeDir: string;
  maxTransfers: string;
  overlayRootfs?: string;
  insecure?: boolean;
  init?: boolean;
}

/** `kairos netboot IMAGE`: PXE-boot machines on this network into IMAGE's live system. */
export const registerNetboot: Register = (program) => {
  program
    .command("netboot")
    .description(
      "network-boot machines into IMAGE (ProxyDHCP beside your DHCP server, TFTP for iPXE, HTTP for kernel, initrd, rootfs and cloud-config)",
    )
    .argument(
      "[IMAGE]",
      "image reference (as for `kairos build iso`), or a directory from `kairos build netboot-files`",
    )
    .option("--rootfs-tar <file>", "use a flattened rootfs tarball instead of an image")
    .option("--name <name>", "netboot file prefix (NAME-kernel, NAME-initrd, NAME.squashfs)", "kairos")
    .option(
      "--state-dir <dir>",
      "build the netboot files here and keep them (default: a temporary directory)",
    )
    .option("--cloud-config <file>", "cloud-config served to the machines (config_url)")
    .option("--cmdline <args>", "kernel command line replacing ours (root= and config_url= are always added)")
    .option("--listen-addr <address>", "address to bind every port to (default all: 0.0.0.0)")
    .option("--interface <name>", "network interface to boot machines on (its address goes in the replies)")
    .option("--http-port <n>", "HTTP port", String(DEFAULT_NETBOOT_HTTP_PORT))
    .option("--tftp-port <n>", "TFTP port", "69")
    .option("--dhcp-port <n>", "DHCP port", "67")
    .option("--pxe-port <n>", "PXE boot-server port", "4011")
    .option("--dhcp-range <start,end>", "be the DHCP server for this range (isolated lab networks only)")
    .option("--ipxe-dir <dir>", "where undionly.kpxe, ipxe.efi (and ipxe-arm64.efi) are", DEFAULT_IPXE_DIR)
    .option("--max-transfers <n>", "TFTP transfers at once", "256")
    .option("--overlay-rootfs <dir>", "add this directory's files to the live rootfs (when building)")
    .option("--insecure", "allow plain-HTTP registries")
    .option("--no-init", "use a base image as it is (default: apply `kairos init` on the fly)")
    .action(
      action(async (image: string | undefined, o: NetbootCliOptions, cmd: Command) => {
        const g = globals(cmd);
        const progress = progressFor(g);
        const name = checkIsoName(o.name);
        const port = (flag: string, v: string, min = 0) => parseIntOption(flag, v, min, 65535)!;
        const settings: Omit<NetbootServeSettings, "files"> = {
          cmdline: o.cmdline,
          address: o.listenAddr,
          iface: o.interface,
          httpPort: port("--http-port", o.httpPort),
          tftpPort: port("--tftp-port", o.tftpPort),
          dhcpPort: port("--dhcp-port", o.dhcpPort),
          pxePort: port("--pxe-port", o.pxePort),
          dhcpRange: o.dhcpRange,
          ipxeDir: o.ipxeDir,
          maxTransfers: parseIntOption("--max-transfers", o.maxTransfers, 1, 100_000),
        };
        if (settings.dhcpRange) parseDhcpRange(settings.dhcpRange);
        const config = o.cloudConfig ? resolve(o.cloudConfig) : undefined;
        if (config) await loadCloudConfig(config);

        const ready =
          image && !o.rootfsTar && existsSync(image) && statSync(image).isDirectory()
            ? existingNetbootFiles(resolve(image), name)
            : undefined;
        let files: NetbootFileSet;
        let cleanup = async () => {};
        if (ready) {
          files = { ...ready, config: config ?? ready.config };
          progress.info(`netboot: serving the netboot files in ${resolve(image!)}`);
        } else {
          const stop = abortOnSignals(progress);
          const out = o.stateDir ? resolve(o.stateDir) : await mkdtemp(join(tmpdir(), "kairos-netboot-"));
          if (!o.stateDir) cleanup = () => rm(out, { recursive: true, force: true });
          const src = await resolveRootfs(image, o, stop.signal, progress);
          try {
            progress.info(`netboot: building the netboot files in ${out}`);
            const r = await buildNetbootFiles({
              rootfs: src.rootfs,
              outDir: out,
              name,
              cloudConfigFile: config,
              overlayRootfs: o.overlayRootfs,
              progress,
              signal: stop.signal,
            });
            files = { kernel: r.kernel, initrd: r.initrd, squashfs: r.squashfs, config: r.config };
          } catch (err) {
            await cleanup();
            throw err;
          } finally {
            stop.dispose();
            await src.close();
          }
        }
        if (!existsSync(files.kernel)) throw new KairosError(`no kernel at ${files.kernel}`);
        try {
          const srv = await startNetboot({ ...settings, files }, progress);
          const why = await waitForStop();
          await srv.close();
          progress.info(`netboot: stopped (${why})`);
        } finally {
          await cleanup();
        }
      }),
    );
};
