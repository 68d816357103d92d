import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { stringify } from "yaml";
import {
  expandStage,
  nodeTemplateData,
  pauseAfterStage,
  randomString,
  readNodeState,
  runStage,
  stepsOf,
} from "../../agent/index.js";
import {
  CLOUD_CONFIG_SCHEMA,
  ConfigError,
  ConfigErrors,
  type ConfigNote,
  collectConfig,
  formatNote,
  loadSource,
  mergeConfigs,
  parseDotPath,
  renderTemplate,
  SYSTEM_STAGES,
  TemplateError,
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

/** The global --strict-validation flag: a config file that does not validate is fatal. */
function strictValidation(cmd: Command): boolean {
  return (cmd.optsWithGlobals() as { strictValidation?: boolean }).strictValidation === true;
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
    .option(
      "--version <version>",
      "set $schema to Kairos' published URL of that release (https://kairos.io/VERSION/cloud-config.json)",
    )
    .action(
      action(async (opts: { version?: string }) => {
        const schema = opts.version
          ? {
              ...CLOUD_CONFIG_SCHEMA,
              $schema: `https://kairos.io/${encodeURIComponent(opts.version)}/cloud-config.json`,
            }
          : CLOUD_CONFIG_SCHEMA;
        process.stdout.write(`${JSON.stringify(schema, null, 2)}\n`);
      }),
    );

  const configCmd = program
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
          if (strictValidation(cmd) && c.errors.length) throw new ConfigErrors(c.errors);
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

  configCmd
    .command("get")
    .description(
      "print one value of the merged config, by upstream's dotted key (install.device, users[0].name)",
    )
    .argument("<key>", "dotted key; an empty output means the key is not set")
    .action(
      action(async (key: string, _opts: unknown, cmd: Command) => {
        // --root, --system and --no-cmdline are the options of `config` itself.
        const opts = (cmd.parent?.opts() ?? {}) as { root?: string; system?: boolean; cmdline?: boolean };
        const path = parseDotPath(key.replace(/^\./, ""));
        if (!path) {
          throw new ConfigError(
            "(command line)",
            1,
            1,
            key,
            "malformed key",
            "write it like install.device or users[0].name",
          );
        }
        const c = await collectConfig({
          root: opts.root ?? "/",
          includeSystem: opts.system,
          cmdline: opts.cmdline === false ? false : undefined,
        });
        for (const e of c.errors) process.stderr.write(`warning: ${e.message}\n`);
        if (strictValidation(cmd) && c.errors.length) throw new ConfigErrors(c.errors);
        let v: unknown = c.merged.value;
        for (const seg of path) {
          v =
            v !== null && typeof v === "object" && Object.hasOwn(v, seg)
              ? (v as Record<string | number, unknown>)[seg]
              : undefined;
        }
        // As upstream: the value as YAML, nothing when unset.
        if (v === undefined || v === null) return 0;
        if (globals(cmd).json) process.stdout.write(`${JSON.stringify(v)}\n`);
        else
          process.stdout.write(typeof v === "object" ? stringify(v, { version: "1.1" }) : `${String(v)}\n`);
        return 0;
      }),
    );

  program
    .command("render-template")
    .description(
      "render a Go template (sprig functions) with the node's config and facts, as stages render them",
    )
    .requiredOption("-f, --file <file>", "template file to render")
    .option("--root <dir>", "read the config and node facts under this root", "/")
    .action(
      action(async (opts: { file: string; root: string }) => {
        let text: string;
        try {
          text = readFileSync(opts.file, "utf8");
        } catch (err) {
          throw new ConfigError(opts.file, 1, 1, "", `cannot read: ${(err as Error).message}`);
        }
        const c = await collectConfig({ root: opts.root, cmdline: false });
        for (const e of c.errors) process.stderr.write(`warning: ${e.message}\n`);
        const node = nodeTemplateData(opts.root);
        // Upstream (kairos-agent pkg/action/render_template.go) gives .Config and .State (the
        // `kairos-agent state` document); .Values, .MachineID and .Random are the stage values.
        const State = await readNodeState(opts.root);
        const data = Object.defineProperties(
          { Config: c.merged.value, State, Random: randomString() },
          {
            Values: { enumerable: true, get: () => node.Values },
            MachineID: {
              enumerable: true,
              get: () => (node.Values as { node: { machineid: string } }).node.machineid,
            },
          },
        );
        try {
          process.stdout.write(renderTemplate(text, data));
        } catch (err) {
          if (!(err instanceof TemplateError)) throw err;
          const before = text.slice(0, err.offset);
          const line = before.split("\n").length;
          const col = err.offset - before.lastIndexOf("\n");
          throw new ConfigError(opts.file, line, col, "", `template: ${err.message}`);
        }
        return 0;
      }),
    );

  program
    .command("run-stage")
    .description(
      "run the steps of a stage (with its .before and .after) against a root directory; several stages run in order in one process",
    )
    .argument("<stages...>", "rootfs, initramfs, boot, fs, network, reconcile, after-install, …")
    .option("--root <dir>", "target root directory", "/")
    .option("--strict", "make a failing step fatal (as `strict: true` in the config)")
    .option("--config <file>", "use only this cloud-config instead of the config directories")
    .option("--analyze", "list the steps that would run, in order, and run nothing")
    .option(
      "--pause <dir>",
      "between two stages write `STAGE done` to the FIFO DIR/up and wait for a line on the FIFO DIR/down (the installed initramfs mounts the layout meanwhile)",
    )
    .action(
      action(
        async (
          stages: string[],
          opts: { root: string; strict?: boolean; config?: string; analyze?: boolean; pause?: string },
          cmd: Command,
        ) => {
          const g = globals(cmd);
          const log = g.quiet
            ? () => {}
            : g.json
              ? (l: string) =>
                  process.stderr.write(
                    `${JSON.stringify({ time: new Date().toISOString(), event: "log", message: l })}\n`,
                  )
              : (l: string) => process.stderr.write(`${l}\n`);
          let fixed: Record<string, unknown> | undefined;
          if (opts.config) {
            const r = await loadSource(opts.config);
            if (r.errors.length) throw new ConfigErrors(r.errors);
            fixed = mergeConfigs(r.configs).value;
          }
          const plans: unknown[] = [];
          for (const [i, stage] of stages.entries()) {
            // Each stage reads the config directories afresh: what ran before it (the rootfs
            // stage, the caller's mounts during --pause) may have changed them.
            let config = fixed;
            if (!config && (opts.analyze || strictValidation(cmd))) {
              // The same view of the config the runner takes (system stages read /system/oem too).
              const base = stage.replace(/\.(before|after)$/, "");
              const c = await collectConfig({
                root: opts.root,
                includeSystem: (SYSTEM_STAGES as readonly string[]).includes(base),
                acceptYip: true,
              });
              for (const e of c.errors)
                process.stderr.write(`${strictValidation(cmd) ? "error" : "warning"}: ${e.message}\n`);
              if (strictValidation(cmd) && c.errors.length) throw new ConfigErrors(c.errors);
              config = c.merged.value;
            }
            if (opts.analyze) {
              const plan = expandStage(stage).map((name) => ({
                stage: name,
                steps: stepsOf(config ?? {}, name).map((st, i) => ({
                  index: i,
                  name: typeof st.name === "string" && st.name ? st.name : `step ${i}`,
                  keys: Object.keys(st).filter((k) => k !== "name"),
                })),
              }));
              if (g.json) plans.push(...plan);
              else
                for (const p of plan) {
                  process.stdout.write(`${p.stage}: ${p.steps.length ? "" : "(no steps)"}\n`);
                  for (const st of p.steps)
                    process.stdout.write(`  ${st.index}. ${st.name} (${st.keys.join(", ")})\n`);
                }
              continue;
            }
            const report = await runStage(stage, { root: opts.root, strict: opts.strict, config, log });
            if (g.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
            if (opts.pause && i < stages.length - 1) pauseAfterStage(opts.pause, stage);
          }
          if (opts.analyze && g.json) process.stdout.write(`${JSON.stringify(plans, null, 2)}\n`);
          return 0;
        },
      ),
    );
};
