import type { Command } from "commander";
import { stringify } from "yaml";
import { readNodeState, stateField } from "../../agent/index.js";
import { KairosError } from "../../sys/index.js";
import { action, globals, output, type Register } from "../common.js";

/** `kairos-agent state [get FIELD]`: how the node booted (live, active, passive, recovery) and its identity. */
export const registerAgentState: Register = (program: Command) => {
  const state = program
    .command("state")
    .description(
      "show how this node booted (livecd_boot, active_boot, passive_boot, recovery_boot, autoreset_boot), its COS_* partitions and its Kairos identity",
    )
    .option("--root <dir>", "read the state of another root (default /)", "/")
    .action(
      action(async (opts: { root: string }, cmd: Command) => {
        const s = await readNodeState(opts.root);
        output(globals(cmd), s, () => stringify(s).trimEnd());
      }),
    );
  state
    .command("get")
    .description("print one field, e.g. `boot`, `state.mounted` or `kairos.version`")
    .argument("<field>", "dotted path into the state")
    .action(
      action(async (field: string, _opts: unknown, cmd: Command) => {
        const parentOpts: { root?: string } = cmd.parent?.opts() ?? {};
        const s = await readNodeState(parentOpts.root ?? "/");
        const v = stateField(s, field);
        if (v === undefined) {
          throw new KairosError(
            `no field '${field}' in the node state`,
            `fields: ${Object.keys(s).join(", ")}`,
          );
        }
        output(globals(cmd), v, () =>
          typeof v === "object" && v !== null ? stringify(v).trimEnd() : String(v),
        );
      }),
    );
  state
    .command("boot")
    .description("print how this node booted (the same as `state get boot`)")
    .action(
      action(async (_opts: unknown, cmd: Command) => {
        const parentOpts: { root?: string } = cmd.parent?.opts() ?? {};
        const s = await readNodeState(parentOpts.root ?? "/");
        output(globals(cmd), s.boot, () => s.boot);
      }),
    );
};
