import type { Command } from "commander";
import { stringify } from "yaml";
import { runStage } from "../../agent/index.js";
import {
  CLOUD_CONFIG_SCHEMA,
  ConfigError,
  ConfigErrors,
  type ConfigNote,
  collectConfig,
  formatNote,
  loadSource,
  mergeConfigs,
} from "../../config/index.js";
import { action, globals, type Register } from "../common.js";
import { type FileVerdict, printVerdicts } from "./config.js";

function errJson(e: ConfigError) {
  return { file: e.file, line: e.line, col: e.col, keyPath: e.keyPath, message: e.message };
}

/** Render a value for the --sources listing. */
function leafValue(v: unknown): string {
  return typeof v === "string" ? JSON.stringify(v) : JSON.stringify(v ?? null);
}

function leaves(v: unknown, prefix: string, out: [string, unknown][]): void {
  if (Array.isArray(v)) {
    if (!v.length) out.push([prefix, []]);
    v.forEach((x, i) => {
      leaves(x, `${prefix}[${i}]`, out);
    });
  } else if (v !== null && typeof v === "object") {
    const keys = Object.keys(v);
    if (!keys.length) out.push([prefix, {}]);
    for (const k of keys) {
      const seg = /^[A-Za-z0-9_-]+$/.test(k) ? (prefix ? `.${k}` : k) : `[${JSON.stringify(k)}]`;
      leaves((v as Record<string, unknown>)[k], `${prefix}${seg}`, out);
    }
  } else out.push([prefix, v]);
}

/** kairos-agent validate | print-schema | config | run-stage. */
export const registerAgentConfigCommands: Register = (program: Command) => {
  program
    .command("validate")
    .description("validate a cloud-config file or http(s) URL, following its config_url (exit 1 if invalid)")
    .argument("<source>", "file path or http(s) URL")
    .action(
      action(async (source: string, _opts: unknown, cmd: Command) => {
        const r = await loadSource(source);
        const warnings: ConfigNote[] = r.notes;
        const skipped = r.configs.length === 0 && r.errors.length === 0;
        const errors = skipped
          ? [
              errJson(
                new ConfigError(
                  source,
                  1,
                  1,
                  "",
                  warnings[0]?.message.replace(/^skipped: /, "") ?? "no config",
                ),
              ),
            ]
          : r.errors.map(errJson);
        const v: FileVerdict = {
          file: source,
          valid: errors.length === 0,
          errors,
          warnings: skipped ? [] : warnings,
        };
        return printVerdicts([v], globals(cmd).json);
      }),
    );

  program
    .command("print-schema")
    .description("print the cloud-config JSON Schema")
    .action(
      action(async () => {
        process.stdout.write(`${JSON.stringify(CLOUD_CONFIG_SCHEMA, null, 2)}\n`);
      }),
    );

  program
    .command("config")
    .description(
      "print the merged config from the config directories, config_url and the kernel command line",
    )
    .option("--sources", "show which file (and line) each value came from")
    .option("--root <dir>", "read the config directories under this root", "/")
    .option("--system", "also read /system/oem first, as the boot stages do")
    .option("--no-cmdline", "do not read <root>/proc/cmdline")
    .action(
      action(
        async (
          opts: { sources?: boolean; root: string; system?: boolean; cmdline: boolean },
          cmd: Command,
        ) => {
          const c = await collectConfig({
            root: opts.root,
            includeSystem: opts.system,
            cmdline: opts.cmdline ? undefined : false,
          });
          const g = globals(cmd);
          if (g.json) {
            process.stdout.write(
              `${JSON.stringify(
                {
                  config: c.merged.value,
                  ...(opts.sources ? { sources: Object.fromEntries(c.merged.sources) } : {}),
                  files: c.configs.map((x) => x.file),
                  errors: c.errors.map(errJson),
                  notes: c.notes,
                },
                null,
                2,
              )}\n`,
            );
          } else {
            for (const n of c.notes) process.stderr.write(`${formatNote(n)}\n`);
            for (const e of c.errors) process.stderr.write(`error: ${e.message}\n`);
            if (opts.sources) {
              const out: [string, unknown][] = [];
              leaves(c.merged.value, "", out);
              for (const [k, v] of out) {
                process.stdout.write(`${k} = ${leafValue(v)}  # ${c.merged.sources.get(k) ?? "?"}\n`);
              }
            } else {
              process.stdout.write(`#cloud-config\n${stringify(c.merged.value, { version: "1.1" })}`);
            }
          }
          return c.errors.length ? 1 : 0;
        },
      ),
    );

  program
    .command("run-stage")
    .description("run the steps of a stage (with its .before and .after) against a root directory")
    .argument("<stage>", "rootfs, initramfs, boot, fs, network, reconcile, after-install, …")
    .option("--root <dir>", "target root directory", "/")
    .option("--strict", "make a failing step fatal (as `strict: true` in the config)")
    .option("--config <file>", "use only this cloud-config instead of the config directories")
    .action(
      action(
        async (stage: string, opts: { root: string; strict?: boolean; config?: string }, cmd: Command) => {
          const g = globals(cmd);
          let config: Record<string, unknown> | undefined;
          if (opts.config) {
            const r = await loadSource(opts.config);
            if (r.errors.length) throw new ConfigErrors(r.errors);
            config = mergeConfigs(r.configs).value;
          }
          const log = g.quiet
            ? () => {}
            : g.json
              ? (l: string) =>
                  process.stderr.write(
                    `${JSON.stringify({ time: new Date().toISOString(), event: "log", message: l })}\n`,
                  )
              : (l: string) => process.stderr.write(`${l}\n`);
          const report = await runStage(stage, { root: opts.root, strict: opts.strict, config, log });
          if (g.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
          return 0;
        },
      ),
    );
};
