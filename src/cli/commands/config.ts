import { readFileSync } from "node:fs";
import type { Command } from "commander";
import {
  ConfigError,
  type ConfigNote,
  formatNote,
  parseCloudConfig,
  validateConfig,
} from "../../config/index.js";
import { action, globals, type Register } from "../common.js";

/** The outcome of validating one file, as printed (and as --json). */
export interface FileVerdict {
  file: string;
  valid: boolean;
  errors: { file: string; line: number; col: number; keyPath: string; message: string }[];
  warnings: ConfigNote[];
}

function errJson(e: ConfigError) {
  return { file: e.file, line: e.line, col: e.col, keyPath: e.keyPath, message: e.message };
}

/** Parse and validate one config text; a file without a header is an error here (it would be skipped). */
export function verdictFor(text: string, file: string): FileVerdict {
  try {
    const out = parseCloudConfig(text, file);
    if ("skipped" in out) {
      const e = new ConfigError(file, 1, 1, "", out.skipped.message.replace(/^skipped: /, ""));
      return { file, valid: false, errors: [errJson(e)], warnings: [] };
    }
    const v = validateConfig(out.config);
    return { file, valid: v.errors.length === 0, errors: v.errors.map(errJson), warnings: v.warnings };
  } catch (err) {
    if (err instanceof ConfigError) return { file, valid: false, errors: [errJson(err)], warnings: [] };
    throw err;
  }
}

/** Print verdicts: each error and warning on its own line; returns the exit code (1 if any invalid). */
export function printVerdicts(verdicts: FileVerdict[], json: boolean | undefined): number {
  if (json)
    process.stdout.write(`${JSON.stringify(verdicts.length === 1 ? verdicts[0] : verdicts, null, 2)}\n`);
  else {
    for (const v of verdicts) {
      for (const e of v.errors) process.stderr.write(`error: ${e.message}\n`);
      for (const w of v.warnings) process.stderr.write(`${formatNote(w)}\n`);
      if (v.valid)
        process.stdout.write(
          `${v.file}: valid${v.warnings.length ? ` (${v.warnings.length} warning(s))` : ""}\n`,
        );
    }
  }
  return verdicts.every((v) => v.valid) ? 0 : 1;
}

/** `kairos validate FILE...` — check cloud-config files on the build host. */
export const registerConfigCommands: Register = (program: Command) => {
  program
    .command("validate")
    .description("check cloud-config files: YAML, header, types and values (exit 1 if any is invalid)")
    .argument("<files...>", "cloud-config files")
    .action(
      action(async (files: string[], _opts: unknown, cmd: Command) => {
        const verdicts = files.map((f) => {
          let text: string;
          try {
            text = readFileSync(f, "utf8");
          } catch (err) {
            const e = new ConfigError(f, 1, 1, "", `cannot read: ${(err as Error).message}`);
            return { file: f, valid: false, errors: [errJson(e)], warnings: [] } satisfies FileVerdict;
          }
          return verdictFor(text, f);
        });
        return printVerdicts(verdicts, globals(cmd).json);
      }),
    );
};
