import { link, mkdir, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import {
  auroraBootImageRef,
  buildIso,
  checkCloudConfig,
  checkIsoName,
  liveCmdline,
  loadCloudConfig,
  type MediaCloudConfig,
  netbootCmdline,
} from "../../artifacts/index.js";
import { parseListen, serveDirectory, serveUntilStopped } from "../../netboot/http.js";
import { KairosError } from "../../sys/index.js";
import { action, globals, output, progressFor, type Register } from "../common.js";
import {
  AURORABOOT_DISK_KEYS,
  auroraBootDiskPlan,
  buildAuroraBootDisks,
  serveStateDir,
} from "./auroraboot-disk.js";
import { abortOnSignals, resolveRootfs } from "./build.js";

/** The AuroraBoot keys we understand, with their defaults (AuroraBoot's own where it has one). */
export const AURORABOOT_KEYS: Readonly<Record<string, string | undefined>> = {
  container_image: undefined,
  state_dir: "/tmp/auroraboot",
  disable_http_server: "false",
  disable_netboot: "false",
  cloud_config: undefined,
  "iso.name": "kairos",
  "iso.overlay_iso": undefined,
  "iso.overlay_rootfs": undefined,
  listen_addr: ":8080",
  "netboot.cmdline": undefined,
  ...AURORABOOT_DISK_KEYS,
};

export interface AuroraBootSettings {
  containerImage?: string;
  stateDir: string;
  disableHttpServer: boolean;
  disableNetboot: boolean;
  cloudConfig?: string;
  isoName: string;
  overlayIso?: string;
  overlayRootfs?: string;
  listenAddr: string;
  netbootCmdline?: string;
}

function parseBool(key: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return true;
  if (["false", "0", "no", "off", ""].includes(v)) return false;
  throw new KairosError(`--set ${key}=${value}: not a boolean`, `use ${key}=true or ${key}=false`);
}

/** Parse `--set key=value` pairs; an unknown key is an error that lists the known ones. */
export function parseAuroraBootSets(sets: readonly string[]): AuroraBootSettings {
  const values = new Map<string, string>();
  for (const s of sets) {
    const eq = s.indexOf("=");
    if (eq <= 0) {
      throw new KairosError(
        `--set '${s}' is not key=value`,
        "for example --set container_image=docker://my-image",
      );
    }
    const key = s.slice(0, eq).trim();
    if (!(key in AURORABOOT_KEYS)) {
      throw new KairosError(
        `unknown AuroraBoot key '${key}'`,
        `known keys: ${Object.keys(AURORABOOT_KEYS).join(", ")}`,
      );
    }
    values.set(key, s.slice(eq + 1));
  }
  const get = (k: string) => values.get(k) ?? AURORABOOT_KEYS[k];
  const nonEmpty = (k: string) => {
    const v = values.get(k);
    if (v !== undefined && v.trim() === "")
      throw new KairosError(`--set ${k}= is empty`, `give ${k} a value or leave it out`);
    return v;
  };
  return {
    containerImage: nonEmpty("container_image"),
    stateDir: nonEmpty("state_dir") ?? AURORABOOT_KEYS.state_dir!,
    disableHttpServer: parseBool("disable_http_server", get("disable_http_server")!),
    disableNetboot: parseBool("disable_netboot", get("disable_netboot")!),
    cloudConfig: nonEmpty("cloud_config"),
    isoName: checkIsoName(nonEmpty("iso.name") ?? AURORABOOT_KEYS["iso.name"]!),
    overlayIso: nonEmpty("iso.overlay_iso"),
    overlayRootfs: nonEmpty("iso.overlay_rootfs"),
    listenAddr: nonEmpty("listen_addr") ?? AURORABOOT_KEYS.listen_addr!,
    netbootCmdline: values.get("netboot.cmdline"),
  };
}

/** `cloud_config` holds either the config itself (starts with a header) or a file path. */
async function cloudConfigFrom(value: string): Promise<MediaCloudConfig> {
  if (/^\s*#(cloud|kairos|node)-config/.test(value)) return checkCloudConfig(value, "cloud_config");
  return loadCloudConfig(value);
}

interface AuroraBootCliOptions {
  set: string[];
  cloudConfig?: string;
  rootfsTar?: string;
  insecure?: boolean;
}

/**
 * `kairos auroraboot`: AuroraBoot's interface (`--set key=value`), run as an ordinary user
 * with no Docker daemon. Builds `STATE_DIR/iso/NAME.iso` (+ .sha256, config.yaml beside it),
 * unless disable_netboot the netboot files in `STATE_DIR/netboot/`, and unless
 * disable_http_server serves STATE_DIR over HTTP until Ctrl-C.
 */
export const registerAuroraBoot: Register = (program) => {
  program
    .command("auroraboot")
    .description(
      "AuroraBoot-compatible: build the ISO (and netboot files) from container_image and serve them over HTTP",
    )
    .option(
      "--set <key=value>",
      `AuroraBoot setting (repeatable); keys: ${Object.keys(AURORABOOT_KEYS).join(", ")}`,
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option("--cloud-config <file>", "cloud-config to validate and embed (same as --set cloud_config=FILE)")
    .option("--rootfs-tar <file>", "use a flattened rootfs tarball instead of container_image")
    .option("--insecure", "allow plain-HTTP registries")
    .action(
      action(async (o: AuroraBootCliOptions, cmd: Command) => {
        const g = globals(cmd);
        const progress = progressFor(g);
        const s = parseAuroraBootSets(o.set);
        parseListen(s.listenAddr);
        if (o.cloudConfig && s.cloudConfig) {
          throw new KairosError("both --cloud-config and --set cloud_config were given", "pass only one");
        }
        if (!s.containerImage && !o.rootfsTar) {
          throw new KairosError(
            "no container_image set",
            "pass --set container_image=REF (docker://NAME is the local Docker daemon, a bare REF a registry)",
          );
        }
        const cloudConfig = o.cloudConfig
          ? await loadCloudConfig(o.cloudConfig)
          : s.cloudConfig
            ? await cloudConfigFrom(s.cloudConfig)
            : undefined;
        const stateDir = resolve(s.stateDir);
        const isoDir = join(stateDir, "iso");
        const stop = abortOnSignals(progress);
        const imageRef = s.containerImage ? auroraBootImageRef(s.containerImage) : undefined;
        if (imageRef) progress.info(`Pulling container image '${s.containerImage}' (${imageRef})`);
        // disk.* keys: build those disk images instead of the ISO (src/cli/commands/auroraboot-disk.ts).
        const disks = auroraBootDiskPlan(o.set);
        if (disks) {
          const open = () =>
            resolveRootfs(imageRef, { rootfsTar: o.rootfsTar, insecure: o.insecure }, stop.signal);
          try {
            const rs = await buildAuroraBootDisks({
              plan: disks,
              rootfs: open,
              stateDir,
              cloudConfig,
              overlayRootfs: s.overlayRootfs,
              progress,
              signal: stop.signal,
            });
            output(g, { disks: rs }, () =>
              rs.map((r) => `disk:     ${r.file} (${r.format}, ${r.boot})`).join("\n"),
            );
          } finally {
            stop.dispose();
          }
          if (!s.disableHttpServer) await serveStateDir(stateDir, s.listenAddr, progress);
          return;
        }
        const src = await resolveRootfs(
          imageRef,
          { rootfsTar: o.rootfsTar, insecure: o.insecure },
          stop.signal,
        );
        let netboot: Record<string, string> | undefined;
        try {
          progress.info(`Generating iso '${s.isoName}' in ${isoDir}`);
          const r = await buildIso({
            rootfs: src.rootfs,
            outDir: isoDir,
            name: s.isoName,
            cloudConfig,
            overlayIso: s.overlayIso,
            overlayRootfs: s.overlayRootfs,
            progress,
            signal: stop.signal,
            // The netboot files are the ISO's own kernel, initrd and squashfs: hardlink them
            // out of the work directory before it is removed (same filesystem).
            keepLive: s.disableNetboot
              ? undefined
              : async (live) => {
                  const nb = join(stateDir, "netboot");
                  await mkdir(nb, { recursive: true });
                  const files = {
                    kernel: join(nb, `${s.isoName}-kernel`),
                    initrd: join(nb, `${s.isoName}-initrd`),
                    squashfs: join(nb, `${s.isoName}.squashfs`),
                    cmdline: join(nb, `${s.isoName}-cmdline`),
                  };
                  for (const [from, to] of [
                    [live.kernel, files.kernel],
                    [live.initrd, files.initrd],
                    [live.squashfs, files.squashfs],
                  ] as const) {
                    await rm(to, { force: true });
                    await link(from, to);
                  }
                  const port = parseListen(s.listenAddr).port;
                  const cmdline = netbootCmdline(
                    `http://{{ server }}:${port}/netboot/${s.isoName}.squashfs`,
                    s.netbootCmdline ?? "",
                  );
                  await writeFile(files.cmdline, `${cmdline}\n`);
                  netboot = files;
                },
          });
          // AuroraBoot leaves the config beside the ISO too.
          await writeFile(join(isoDir, "config.yaml"), cloudConfig?.text ?? "");
          output(g, { ...r, netboot, liveCmdline: liveCmdline() }, () =>
            [
              `iso:      ${r.iso} (${(r.size / 1048576).toFixed(0)} MiB)`,
              `sha256:   ${r.sha256}`,
              `config:   ${join(isoDir, "config.yaml")}`,
              ...(netboot
                ? [`netboot:  ${join(stateDir, "netboot")}/ (kernel, initrd, squashfs, cmdline)`]
                : []),
            ].join("\n"),
          );
        } finally {
          stop.dispose();
          await src.close();
        }
        if (!s.disableNetboot) {
          progress.info(
            "note: the PXE responder is not started by this command yet; serve netboot/ with `kairos netboot` (see docs/media.md)",
          );
        }
        if (!s.disableHttpServer) {
          const server = await serveDirectory({
            root: stateDir,
            listen: s.listenAddr,
            onRequest: (line) => progress.info(`http: ${line}`),
          });
          progress.info(
            `Serving ${stateDir} on ${server.url} (listening on ${server.address}); Ctrl-C to stop`,
          );
          const why = await serveUntilStopped(server);
          progress.info(`http server stopped (${why})`);
        }
      }),
    );
};
