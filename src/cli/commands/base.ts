import type { Command } from "commander";
import { ensureDefaultBase } from "../../base/index.js";
import { action, globals, output, progressFor, type Register } from "../common.js";

/** `kairos base`: build (once, cached) and locate the built-in default Debian base image. */
export const registerBase: Register = (program) => {
  program
    .command("base")
    .description(
      "build (first time, ~2 min) or locate the cached default base image: Debian bookworm made with mmdebstrap",
    )
    .option("--mirror <url>", "Debian mirror (default: the one this host's apt uses)")
    .action(
      action(async (opts: { mirror?: string }, cmd: Command) => {
        const g = globals(cmd);
        const base = await ensureDefaultBase({ progress: progressFor(g), mirror: opts.mirror });
        output(g, base, () =>
          [
            `image:       ${base.ref}`,
            `oci-archive: ${base.archiveRef}`,
            `rootfs tar:  ${base.rootfsTar}`,
          ].join("\n"),
        );
      }),
    );
};
