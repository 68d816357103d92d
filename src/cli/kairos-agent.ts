#!/usr/bin/env node
import { Command } from "commander";
import { VERSION } from "../version.js";
import { agentCommands } from "./commands/index.js";
import { action } from "./common.js";

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
      process.stdout.write(`${VERSION}\n`);
    }),
  );

for (const register of agentCommands) register(program);

await program.parseAsync(process.argv);
