import type { Register } from "../common.js";
import { registerAgentConfigCommands } from "./agent-config.js";
import { registerAgentInstall } from "./agent-install.js";
import { registerAgentState } from "./agent-state.js";

/**
 * The `kairos-agent` (node) subcommands: the agent's own registry. src/cli/kairos-agent.ts
 * imports only this file, so the agent bundle carries none of the build-host commands
 * (`kairos base/image/build/...`) or what they import. Add a node command by writing
 * `agent-<name>.ts` exporting a `Register` and listing it here.
 */
export const agentCommands: Register[] = [
  registerAgentConfigCommands,
  registerAgentState,
  registerAgentInstall,
];
