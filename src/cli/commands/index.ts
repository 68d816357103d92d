import type { Register } from "../common.js";

/** The `kairos` (build host) subcommands. Each module owns its own command group. */
export const kairosCommands: Register[] = [];

/** The `kairos-agent` (node) subcommands. */
export const agentCommands: Register[] = [];
