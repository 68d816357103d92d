import { readFile } from "node:fs/promises";
import type { Command } from "commander";
import { stringify } from "yaml";
import { install, installDialogue } from "../../agent/index.js";
import { type Collected, ConfigErrors, collectConfig, loadSource, mergeConfigs } from "../../config/index.js";
import { KairosError } from "../../sys/index.js";
import { action, type Register } from "../common.js";

interface PowerOpts {
  device?: string;
  reboot?: boolean;
  poweroff?: boolean;
}

function power(opts: PowerOpts): { reboot?: boolean; poweroff?: boolean } {
  if (opts.reboot && opts.poweroff) throw new KairosError("--reboot and --poweroff exclude each other");
  return {
    ...(opts.reboot ? { reboot: true } : {}),
    ...(opts.poweroff ? { poweroff: true } : {}),
  };
}

async function cmdlineWords(): Promise<string[]> {
  return (await readFile("/proc/cmdline", "utf8").catch(() => "")).split(/\s+/).filter(Boolean);
}

/**
 * The cloud-config for COS_OEM: the config files, plus what the kernel command line's
 * config_url fetched (a netbooted node gets its cloud-config only that way, and the installed
 * system boots without the netboot server). The command line's own words stay out (they are
 * this boot's), and so does the fetched documents' config_url (already inlined; the server
 * may be gone).
 */
export function oemCloudConfig(files: Collected, all: Collected): string {
  const known = new Set(files.configs.map((c) => c.file));
  const fetched = all.configs
    .filter((c) => /^https?:\/\//i.test(c.file) && !known.has(c.file))
    .map((c) => {
      const { config_url: _inlined, ...value } = c.value;
      return { ...c, value };
    });
  return `#cloud-config\n${stringify(mergeConfigs([...files.configs, ...fetched]).value)}`;
}

/** The merged config of this node (config directories + kernel command line) and the user's part of it for COS_OEM. */
async function nodeConfig(): Promise<{ config: Record<string, unknown>; oem: string }> {
  const all = await collectConfig({ root: "/" });
  for (const e of all.errors) process.stderr.write(`warning: ${e.message} (file left out)\n`);
  const files = await collectConfig({ root: "/", cmdline: false });
  return { config: all.merged.value, oem: oemCloudConfig(files, all) };
}

/** kairos-agent install | manual-install | interactive-install. */
export const registerAgentInstall: Register = (program: Command) => {
  program
    .command("install")
    .description(
      "install to disk following the cloud-config (install.device, default auto: the largest disk)",
    )
    .option("--device <dev>", "disk to install to (overrides install.device)")
    .option("--reboot", "reboot when done")
    .option("--poweroff", "power off when done")
    .option(
      "--auto",
      "install only when the config says install.auto: true or the kernel command line has install-mode (what the live system's kairos-installer.service runs); otherwise do nothing",
    )
    .action(
      action(async (opts: PowerOpts & { auto?: boolean }) => {
        // Checked before anything is read: a contradictory command line changes nothing.
        const when = power(opts);
        const { config, oem } = await nodeConfig();
        if (opts.auto) {
          const words = await cmdlineWords();
          const auto = (config.install as Record<string, unknown> | undefined)?.auto === true;
          if (words.includes("install-mode-interactive")) {
            process.stdout.write("install-mode-interactive: the interactive installer runs on tty1\n");
            return 0;
          }
          if (!auto && !words.includes("install-mode")) {
            process.stdout.write(
              "not installing: neither install.auto: true in the cloud-config nor install-mode on the kernel command line\n",
            );
            return 0;
          }
        }
        await install({
          config,
          oemConfig: oem,
          ...(opts.device ? { device: opts.device } : {}),
          ...when,
        });
        return 0;
      }),
    );

  program
    .command("manual-install")
    .description("install to disk following the given cloud-config file or URL (copied to COS_OEM)")
    .argument("<config>", "cloud-config file or http(s) URL")
    .option("--device <dev>", "disk to install to (overrides install.device)")
    .option("--reboot", "reboot when done")
    .option("--poweroff", "power off when done")
    .action(
      action(async (source: string, opts: PowerOpts) => {
        const when = power(opts);
        const r = await loadSource(source);
        if (r.errors.length) throw new ConfigErrors(r.errors);
        if (!r.configs.length) throw new KairosError(`${source} holds no cloud-config`, r.notes[0]?.message);
        const config = mergeConfigs(r.configs).value;
        const text = /^https?:/.test(source)
          ? `#cloud-config\n${stringify(config)}`
          : await readFile(source, "utf8");
        await install({
          config,
          oemConfig: text,
          ...(opts.device ? { device: opts.device } : {}),
          ...when,
        });
        return 0;
      }),
    );

  program
    .command("interactive-install")
    .description("ask for the disk, a user and its password or SSH key, then install")
    .option("--reboot", "reboot when done")
    .option("--poweroff", "power off when done")
    .action(
      action(async (opts: PowerOpts) => {
        const when = power(opts);
        const answers = await installDialogue(process.stdin, process.stdout);
        if (!answers) return 1;
        const { config } = await nodeConfig();
        const merged = {
          ...config,
          ...answers.config,
          install: { ...(config.install as object), device: answers.device },
        };
        await install({ config: merged, oemConfig: answers.text, device: answers.device, ...when });
        return 0;
      }),
    );
};
