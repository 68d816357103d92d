#!/usr/bin/env node
import { Command } from "commander";
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
    .showHelpAfterError();

  program
    .command("version")
    .description("print the agent version")
    .action(
      action(async () => {
        process.stdout.write(`${VERSION}${FIPS ? " (fips)" : ""}\n`);
      }),
    );

  for (const register of agentCommands) register(program);

  await program.parseAsync(process.argv);
}

void main();
