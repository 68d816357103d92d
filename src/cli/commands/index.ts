import type { Register } from "../common.js";
import { registerAuroraBoot } from "./auroraboot.js";
import { registerBase } from "./base.js";
import { registerBuild } from "./build.js";
import { registerConfigCommands } from "./config.js";
import { registerDisk } from "./disk.js";
import { registerFactory } from "./factory.js";
import { registerImage } from "./image.js";
import { registerNetboot } from "./netboot.js";

/** The `kairos` (build host) subcommands. Each module owns its own command group. */
export const kairosCommands: Register[] = [
  registerConfigCommands,
  registerBase,
  registerImage,
  registerBuild,
  registerDisk,
  registerAuroraBoot,
  registerFactory,
  registerNetboot,
];

/** The `kairos-agent` (node) subcommands live in their own registry: ./agent.ts. */
export { agentCommands } from "./agent.js";
