#!/usr/bin/env node
import { Command } from "commander";
// The module itself, not factory/index.js: the agent bundle must carry no build-host code.
import { enforceFips } from "../factory/fips.js";
import { describeError } from "../sys/index.js";
import { VERSION } from "../version.js";
import { agentCommands } from "./commands/agent.js";
import { action } from "./common.js";

/** Set by scripts/build-agent (esbuild --define) for the FIPS flavor of the single executable. */
declare const __KAIROS_FIPS__: boolean | undefined;
const FIPS = typeof __KAIROS_FIPS__ !== "undefined" && __KAIROS_FIPS__ === true;

// A function, not top-level await: the single executable is a CommonJS bundle.
async function main(): Promise<void> {
  if (FIPS) {
    try {
      enforceFips();
    } catch (err) {
      process.stderr.write(`${describeError(err)}\n`);
      process.exit(1);
    }
  }

  const program = new Command("kairos-agent")
    .description("The Kairos node agent: install, upgrade, reset and run boot stages.")
    .option("--json", "machine-readable output")
    .option("-q, --quiet", "no progress output")
    .option("--debug", "debug output: errors also print their stack (same as KAIROS_DEBUG=1)")
    .option("--strict-validation", "a config file that does not validate is an error, not a skipped file")
    .showHelpAfterError()
    .hook("preAction", (cmd) => {
      if (cmd.opts().debug) process.env.KAIROS_DEBUG = "1";
    });

  program
    .command("version")
    .description("print the agent version")
    .option("-l, --long", "also print the runtime and platform")
    .action(
      action(async (opts: { long?: boolean }) => {
        if (!opts.long) {
          process.stdout.write(`${VERSION}${FIPS ? " (fips)" : ""}\n`);
          return;
        }
        process.stdout.write(
          `${JSON.stringify({ version: VERSION, fips: FIPS, node: process.version, platform: `${process.platform}/${process.arch}` })}\n`,
        );
      }),
    );

  for (const register of agentCommands) register(program);

  await program.parseAsync(process.argv);
}

void main();
