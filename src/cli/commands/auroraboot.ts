import { statSync } from "node:fs";
import { link, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import type { Command } from "commander";
import {
  buildIso,
  buildNetbootFiles,
  checkCloudConfig,
  checkIsoName,
  liveCmdline,
  type MediaCloudConfig,
  netbootCmdline,
} from "../../artifacts/index.js";
import { fetchConfigText, MAX_CONFIG_BYTES, renderTemplate, TemplateError } from "../../config/index.js";
import { parseListen, serveDirectory, serveUntilStopped } from "../../netboot/index.js";
import { resolveSourceReference } from "../../oci/index.js";
import { KairosError } from "../../sys/index.js";
import { action, globals, output, progressFor, type Register } from "../common.js";
import { auroraBootDiskPlan, buildAuroraBootDisks, serveStateDir } from "./auroraboot-disk.js";
import {
  type AuroraBootSettings,
  flattenConfigFile,
  keysHelp,
  RELEASE_KEYS,
  resolveAuroraBootSettings,
  splitSets,
  templateValues,
} from "./auroraboot-keys.js";
import { abortOnSignals, parseIntOption, resolveRootfs } from "./build.js";
import { startNetboot, waitForStop } from "./netboot.js";

/** The settings the build uses, read from the key table's values. */
export interface AuroraBootPlan {
  containerImage?: string;
  stateDir: string;
  disableHttpServer: boolean;
  disableNetboot: boolean;
  disableIso: boolean;
  cloudConfig?: string;
  isoName: string;
  overlayIso?: string;
  overlayRootfs?: string;
  listenAddr: string;
  netbootCmdline?: string;
  liveCmdline?: string;
  insecure: boolean;
  netbootHttpPort: number;
  netbootListenAddr?: string;
}

/** Turn checked settings into the build plan (names, cmdline, flags). */
export function planFrom(s: AuroraBootSettings, now = new Date()): AuroraBootPlan {
  const v = (k: string) => s.values.get(k);
  const bool = (k: string) => v(k) === "true";
  // enki's BuildISOAction.burnISO: NAME.YYYYMMDD.iso, from the local clock (time.Now()).
  const pad = (n: number) => String(n).padStart(2, "0");
  const date = `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}`;
  const override = v("iso.override_name");
  const name = override ?? `${v("iso.name")}${bool("iso.include_date") ? `.${date}` : ""}`;
  const live = [
    v("iso.extend-live-cmdline"),
    v("iso.live_console") ? `console=${v("iso.live_console")}` : undefined,
  ]
    .filter((x): x is string => !!x && x.trim() !== "")
    .join(" ");
  return {
    containerImage: v("container_image"),
    stateDir: v("state_dir")!,
    disableHttpServer: bool("disable_http_server"),
    disableNetboot: bool("disable_netboot"),
    disableIso: bool("disable_iso"),
    cloudConfig: v("cloud_config"),
    isoName: checkIsoName(name),
    overlayIso: v("iso.overlay_iso"),
    overlayRootfs: v("iso.overlay_rootfs"),
    listenAddr: v("listen_addr")!,
    netbootCmdline: v("netboot.cmdline"),
    ...(live ? { liveCmdline: live } : {}),
    insecure: bool("allow-insecure-registries"),
    netbootHttpPort: parseIntOption("netboot_http_port", v("netboot_http_port"), 0, 65535)!,
    netbootListenAddr: v("netboot_listen_addr"),
  };
}

const HEADER = /^\s*#(cloud|kairos|node)-config/;

/** Read `cloud_config`: inline text, `-` (stdin), an http(s) URL or a file. */
async function cloudConfigText(
  value: string,
  stdin: () => Promise<string>,
): Promise<{ text: string; label: string }> {
  if (HEADER.test(value)) return { text: value, label: "cloud_config" };
  if (value === "-") return { text: await stdin(), label: "(stdin)" };
  if (/^https?:\/\//i.test(value)) {
    try {
      return { text: await fetchConfigText(value), label: value };
    } catch (err) {
      throw new KairosError(
        `cloud_config ${value}: could not fetch: ${(err as Error).message}`,
        "check the URL",
      );
    }
  }
  try {
    return { text: await readFile(value, "utf8"), label: value };
  } catch (err) {
    throw new KairosError(
      `cloud_config ${value}: cannot read: ${(err as Error).message}`,
      "give a file, an http(s) URL, - or the config itself",
    );
  }
}

/**
 * The cloud-config as AuroraBoot takes it: empty is an error, `[[ .key ]]` is rendered with the
 * --set values (Go-template syntax with AuroraBoot's delimiters), then it is validated.
 */
export async function auroraBootCloudConfig(
  value: string,
  settings: AuroraBootSettings,
  stdin: () => Promise<string> = readStdin,
): Promise<MediaCloudConfig> {
  const { text, label } = await cloudConfigText(value, stdin);
  if (text.trim() === "") {
    throw new KairosError(
      `cloud config set but contents are empty (${label})`,
      "give a cloud-config that starts with #cloud-config",
    );
  }
  let rendered: string;
  try {
    rendered = renderTemplate(text, templateValues(settings), ["[[", "]]"]);
  } catch (err) {
    if (!(err instanceof TemplateError)) throw err;
    const before = text.slice(0, err.offset);
    throw new KairosError(
      `${label}:${before.split("\n").length}:${err.offset - before.lastIndexOf("\n")}: [[ ]] template: ${err.message}`,
      "[[ .KEY ]] takes the value of --set KEY=VALUE",
    );
  }
  return checkCloudConfig(rendered, label);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of process.stdin) {
    size += (c as Buffer).length;
    if (size > MAX_CONFIG_BYTES)
      throw new KairosError(`cloud config on stdin is larger than ${MAX_CONFIG_BYTES} bytes`);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Read the optional positional AuroraBoot config file (a path or an http(s) URL). */
async function configFilePairs(source: string | undefined): Promise<[string, string][]> {
  if (!source) return [];
  let text: string;
  try {
    text = /^https?:\/\//i.test(source) ? await fetchConfigText(source) : await readFile(source, "utf8");
  } catch (err) {
    throw new KairosError(`AuroraBoot config ${source}: cannot read: ${(err as Error).message}`);
  }
  return flattenConfigFile(text, source);
}

interface AuroraBootCliOptions {
  set: string[];
  cloudConfig?: string;
  rootfsTar?: string;
  insecure?: boolean;
  debug?: boolean;
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
    .argument("[config]", "AuroraBoot YAML config file or http(s) URL (keys as for --set; --set wins)")
    .option(
      "--set <key=value>",
      "AuroraBoot setting (repeatable); the keys are listed below",
      (v: string, prev: string[]) => [...prev, v],
      [] as string[],
    )
    .option("--cloud-config <file>", "cloud-config (a file, URL or -), same as --set cloud_config=…")
    .option("--rootfs-tar <file>", "use a flattened rootfs tarball instead of container_image")
    .option("--insecure", "allow plain-HTTP registries (same as --set allow-insecure-registries=true)")
    .option("--debug", "debug output: errors also print their stack")
    .addHelpText("after", `\n${keysHelp()}`)
    .action(
      action(async (configFile: string | undefined, o: AuroraBootCliOptions, cmd: Command) => {
        if (o.debug) process.env.KAIROS_DEBUG = "1";
        const g = globals(cmd);
        const progress = progressFor(g);
        const pairs = [...(await configFilePairs(configFile)), ...splitSets(o.set)];
        if (o.cloudConfig) {
          if (o.set.some((x) => x.startsWith("cloud_config="))) {
            throw new KairosError("both --cloud-config and --set cloud_config were given", "pass only one");
          }
          pairs.push(["cloud_config", o.cloudConfig]);
        }
        const settings = resolveAuroraBootSettings(pairs);
        for (const n of settings.notes) progress.info(`note: ${n}`);
        const s = planFrom(settings);
        parseListen(s.listenAddr);
        if (!s.containerImage && !o.rootfsTar) {
          const release = RELEASE_KEYS.filter((k) => settings.values.has(k));
          if (release.length) {
            throw new KairosError(
              `release artifacts (${release.join(", ")}) are not downloaded by kairos-ts`,
              "set container_image to the release's container image instead (e.g. quay.io/kairos/ubuntu:24.04-core-amd64-generic-v3.4.2)",
            );
          }
          throw new KairosError(
            "no container_image set",
            "pass --set container_image=REF (a registry image; docker://REF uses the local Docker daemon when there is one)",
          );
        }
        if (s.disableIso && s.disableNetboot) {
          throw new KairosError(
            "disable_iso and disable_netboot are both set: nothing to build",
            "drop one of them",
          );
        }
        const cloudConfig = s.cloudConfig ? await auroraBootCloudConfig(s.cloudConfig, settings) : undefined;
        for (const k of settings.free.keys()) {
          if (!cloudConfig?.text.includes(k) && !s.cloudConfig?.includes(k)) {
            progress.info(
              `note: --set ${k}: not an AuroraBoot key and not used as [[ .${k} ]] in the cloud-config`,
            );
          }
        }
        const stateDir = resolve(s.stateDir);
        const isoDir = join(stateDir, "iso");
        const nbDir = join(stateDir, "netboot");
        const stop = abortOnSignals(progress);
        const resolved = s.containerImage
          ? resolveSourceReference(
              s.containerImage,
              {
                isDirectory: (p) => {
                  try {
                    return statSync(p).isDirectory();
                  } catch {
                    return false;
                  }
                },
                dockerDaemon: () => dockerSocketExists(),
              },
              { preferDaemon: true },
            )
          : undefined;
        if (resolved) progress.info(`Pulling container image '${s.containerImage}': ${resolved.reading}`);
        // disk.* keys: build those disk images instead of the ISO (src/cli/commands/auroraboot-disk.ts).
        const disks = auroraBootDiskPlan(
          [...settings.values].filter(([k]) => k.startsWith("disk.")).map(([k, v]) => `${k}=${v}`),
        );
        if (disks) {
          const open = () =>
            resolveRootfs(
              resolved?.ref,
              { rootfsTar: o.rootfsTar, insecure: o.insecure || s.insecure },
              stop.signal,
            );
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
          resolved?.ref,
          { rootfsTar: o.rootfsTar, insecure: o.insecure || s.insecure },
          stop.signal,
        );
        const port = parseListen(s.listenAddr).port;
        const squashfsUrlBase = `http://{{ server }}:${port}/netboot`;
        let netboot: Record<string, string> | undefined;
        try {
          if (s.disableIso) {
            progress.info(`Generating netboot files '${s.isoName}' in ${nbDir}`);
            const nb = await buildNetbootFiles({
              rootfs: src.rootfs,
              outDir: nbDir,
              name: s.isoName,
              baseUrl: squashfsUrlBase,
              extraCmdline: s.netbootCmdline,
              overlayRootfs: s.overlayRootfs,
              progress,
              signal: stop.signal,
            });
            netboot = {
              kernel: nb.kernel,
              initrd: nb.initrd,
              squashfs: nb.squashfs,
              cmdline: nb.cmdlineFile,
            };
            // The (rendered, validated) config beside the files, as the ISO path leaves it.
            await writeFile(join(nbDir, "config.yaml"), cloudConfig?.text ?? "");
            output(g, { netboot }, () => `netboot:  ${nbDir}/ (kernel, initrd, squashfs, cmdline)`);
          } else {
            progress.info(`Generating iso '${s.isoName}' in ${isoDir}`);
            const r = await buildIso({
              rootfs: src.rootfs,
              outDir: isoDir,
              name: s.isoName,
              cloudConfig,
              overlayIso: s.overlayIso,
              overlayRootfs: s.overlayRootfs,
              ...(s.liveCmdline ? { grub: { extraCmdline: s.liveCmdline } } : {}),
              progress,
              signal: stop.signal,
              // The netboot files are the ISO's own kernel, initrd and squashfs: hardlink them
              // out of the work directory before it is removed (same filesystem).
              keepLive: s.disableNetboot
                ? undefined
                : async (live) => {
                    await mkdir(nbDir, { recursive: true });
                    const files = {
                      kernel: join(nbDir, `${s.isoName}-kernel`),
                      initrd: join(nbDir, `${s.isoName}-initrd`),
                      squashfs: join(nbDir, `${s.isoName}.squashfs`),
                      cmdline: join(nbDir, `${s.isoName}-cmdline`),
                    };
                    for (const [from, to] of [
                      [live.kernel, files.kernel],
                      [live.initrd, files.initrd],
                      [live.squashfs, files.squashfs],
                    ] as const) {
                      await rm(to, { force: true });
                      await link(from, to);
                    }
                    const cmdline = netbootCmdline(
                      `${squashfsUrlBase}/${s.isoName}.squashfs`,
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
                ...(netboot ? [`netboot:  ${nbDir}/ (kernel, initrd, squashfs, cmdline)`] : []),
              ].join("\n"),
            );
          }
        } finally {
          stop.dispose();
          await src.close();
        }
        // The PXE server (AuroraBoot's pixiecore) and the state-dir server run until Ctrl-C.
        const nb =
          netboot && !s.disableNetboot
            ? await startNetboot(
                {
                  files: {
                    kernel: netboot.kernel!,
                    initrd: netboot.initrd!,
                    squashfs: netboot.squashfs!,
                    // With disable_iso the config is written beside the netboot files only.
                    config: cloudConfig ? join(s.disableIso ? nbDir : isoDir, "config.yaml") : undefined,
                  },
                  cmdline: s.netbootCmdline,
                  address: s.netbootListenAddr,
                  httpPort: s.netbootHttpPort,
                },
                progress,
              )
            : undefined;
        try {
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
          } else if (nb) {
            progress.info(`netboot stopped (${await waitForStop()})`);
          }
        } finally {
          await nb?.close();
        }
      }),
    );
};

/** A local Docker daemon is reachable: its unix socket ($DOCKER_HOST or the default) exists. */
function dockerSocketExists(): boolean {
  const host = process.env.DOCKER_HOST;
  const path = host?.startsWith("unix://") ? host.slice(7) : host ? undefined : "/var/run/docker.sock";
  if (!path) return false;
  try {
    return statSync(path).isSocket();
  } catch {
    return false;
  }
}
