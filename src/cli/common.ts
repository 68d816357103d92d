import type { Command } from "commander";
import { createProgress, describeError, type Progress, progressMode } from "../sys/index.js";

/** Options every command accepts. */
export interface GlobalOptions {
  json?: boolean;
  quiet?: boolean;
}

/** The progress reporter that matches the user's flags and the terminal. */
export function progressFor(opts: GlobalOptions): Progress {
  return createProgress(progressMode(opts));
}

/** Print machine output: JSON when --json, else the human rendering. */
export function output(opts: GlobalOptions, value: unknown, human: () => string): void {
  process.stdout.write(
    opts.json ? `${JSON.stringify(value, null, 2)}\n` : `${human().replace(/\n?$/, "\n")}`,
  );
}

/**
 * Wrap an action so that errors become one readable message and a non-zero exit code,
 * never a stack trace (set KAIROS_DEBUG=1 for the stack).
 */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<unknown>) {
  return async (...args: A): Promise<void> => {
    try {
      const code = await fn(...args);
      if (typeof code === "number") process.exitCode = code;
    } catch (err) {
      process.stderr.write(`${describeError(err)}\n`);
      if (process.env.KAIROS_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
      process.exitCode = process.exitCode || 1;
    }
  };
}

/** Merge the command's own options with the program-wide ones (--json, --quiet). */
export function globals(cmd: Command): GlobalOptions {
  return cmd.optsWithGlobals() as GlobalOptions;
}

/** A module that adds its subcommands to a program. */
export type Register = (program: Command) => void;
