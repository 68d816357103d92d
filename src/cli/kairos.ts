#!/usr/bin/env node
import { Command } from "commander";
import { VERSION } from "../version.js";
import { kairosCommands } from "./commands/index.js";

const program = new Command("kairos")
  .description(
    "Build immutable, A/B-upgradable Kairos OS images and bootable media from any container image.",
  )
  .option("--json", "machine-readable output (progress as JSON lines on stderr)")
  .option("-q, --quiet", "no progress output")
  .version(VERSION, "-v, --version")
  .showHelpAfterError();

for (const register of kairosCommands) register(program);

await program.parseAsync(process.argv);
