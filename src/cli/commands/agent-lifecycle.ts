import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Command } from "commander";
import {
  assessBoot,
  listBootEntries,
  readGrubenv,
  readNodeState,
  requireEntry,
  resetSystem,
  updateGrubenv,
  upgradeSystem,
  withWritablePartition,
} from "../../agent/index.js";
import { collectConfig } from "../../config/index.js";
import { KairosError, run } from "../../sys/index.js";
import { action, globals, output, progressFor, type Register } from "../common.js";

/** Where the framework layer puts the tools the agent runs on the node (tar2sqfs). */
const FRAMEWORK_BIN = "/usr/lib/kairos/bin";

/** The `upgrade:` and `reset:` sections of the node's merged cloud-config (upstream keys). */
async function lifecycleConfig(): Promise<{
  upgrade: Record<string, unknown>;
  reset: Record<string, unknown>;
}> {
  const c = await collectConfig({}).catch(() => undefined);
  const v = (c?.merged.value ?? {}) as Record<string, unknown>;
  const obj = (x: unknown) => (x && typeof x === "object" ? (x as Record<string, unknown>) : {});
  return { upgrade: obj(v.upgrade), reset: obj(v.reset) };
}

const uriOf = (x: unknown): string | undefined => {
  const o = x && typeof x === "object" ? (x as Record<string, unknown>) : {};
  return typeof o.uri === "string" ? o.uri : undefined;
};

async function finish(how: { reboot?: boolean; poweroff?: boolean }): Promise<void> {
  if (how.poweroff) await run("systemctl", ["poweroff"]);
  else if (how.reboot) await run("systemctl", ["reboot"]);
}

/** Entry ids `--boot-entry` accepts for an upgrade, and what they upgrade. */
const UPGRADE_ENTRIES: Readonly<Record<string, "active" | "recovery">> = {
  cos: "active",
  active: "active",
  recovery: "recovery",
};

/** The GRUB configurations whose entries a node offers: the installed one, the user's grubmenu. */
async function grubConfigs(): Promise<string[]> {
  const files: string[] = [];
  await withWritablePartition("COS_STATE", async (d) => {
    files.push(join(d, "grub2/grub.cfg"));
  }).catch(() => {});
  files.push("/etc/cos/grub.cfg", "/oem/grubmenu");
  return files;
}

/** kairos-agent upgrade | reset | recovery | bootentry | boot-assessment. */
export const registerAgentLifecycle: Register = (program: Command) => {
  program
    .command("upgrade")
    .description(
      "write a new system image from a container image and make it active (old active becomes passive)",
    )
    .option(
      "--source <ref>",
      "image: oci:HOST/REPO:TAG (registry), oci:LAYOUT_DIR[:TAG], docker://, oci-archive:, docker-archive:, docker-daemon:, dir:",
    )
    .option("--recovery", "upgrade the recovery system instead of the active one")
    .option("--boot-entry <id>", "the entry to upgrade: cos (default) or recovery")
    .option("--insecure", "allow a plain-HTTP or self-signed registry")
    .option("--reboot", "reboot when done")
    .option("--poweroff", "power off when done")
    .action(
      action(
        async (
          opts: {
            source?: string;
            recovery?: boolean;
            bootEntry?: string;
            insecure?: boolean;
            reboot?: boolean;
            poweroff?: boolean;
          },
          cmd: Command,
        ) => {
          const cfg = (await lifecycleConfig()).upgrade;
          let target: "active" | "recovery" = opts.recovery || cfg.recovery === true ? "recovery" : "active";
          if (opts.bootEntry !== undefined) {
            const t = UPGRADE_ENTRIES[opts.bootEntry];
            if (!t) {
              throw new KairosError(
                `--boot-entry ${opts.bootEntry}: not an entry an upgrade writes`,
                `use one of: ${Object.keys(UPGRADE_ENTRIES).join(", ")}`,
              );
            }
            target = opts.recovery ? "recovery" : t;
          }
          const source =
            opts.source ??
            (target === "recovery" ? uriOf(cfg["recovery-system"]) : undefined) ??
            uriOf(cfg.system) ??
            (typeof cfg.source === "string" ? cfg.source : undefined);
          if (!source) {
            throw new KairosError(
              "no image to upgrade to",
              "pass --source oci:HOST/REPO:TAG (or set upgrade.system.uri in the cloud-config)",
            );
          }
          if (existsSync(FRAMEWORK_BIN)) process.env.PATH = `${FRAMEWORK_BIN}:${process.env.PATH ?? ""}`;
          const progress = progressFor(globals(cmd));
          const label = target === "recovery" ? "COS_RECOVERY" : "COS_STATE";
          const r = await withWritablePartition("COS_OEM", (oem) =>
            withWritablePartition(label, (dir) =>
              upgradeSystem({
                cos: join(dir, "cOS"),
                source,
                target,
                grubenv: join(oem, "grubenv"),
                open: { insecure: opts.insecure === true },
                progress,
                onStep: (s) => progress.info(`upgrade: ${s}`),
              }),
            ),
          );
          output(
            globals(cmd),
            r,
            () => `${target} is now ${r.info.version ?? r.info.source} (slot ${r.id})\nUpgrade completed`,
          );
          await finish({
            reboot: opts.reboot ?? cfg.reboot === true,
            poweroff: opts.poweroff ?? cfg.poweroff === true,
          });
        },
      ),
    );

  program
    .command("reset")
    .description(
      "factory reset: redeploy active and passive from recovery, wipe COS_PERSISTENT (keep COS_OEM unless --reset-oem)",
    )
    .option("--reset-oem", "also empty COS_OEM (the user's cloud-configs)")
    .option("--unattended", "do not ask for confirmation")
    .option("--reboot", "reboot when done")
    .option("--poweroff", "power off when done")
    .action(
      action(
        async (
          opts: { resetOem?: boolean; unattended?: boolean; reboot?: boolean; poweroff?: boolean },
          cmd: Command,
        ) => {
          const cfg = (await lifecycleConfig()).reset;
          const state = await readNodeState();
          if (state.boot !== "recovery_boot" && state.boot !== "autoreset_boot") {
            // The running system's own images and persistent data are in use: reset from recovery.
            await withWritablePartition("COS_OEM", (oem) =>
              updateGrubenv(join(oem, "grubenv"), { next_entry: "statereset" }),
            );
            process.stdout.write(
              "not booted from recovery: the next boot runs the reset (entry statereset)\n",
            );
            await finish({ reboot: opts.reboot ?? cfg.reboot === true, poweroff: false });
            return;
          }
          if (!opts.unattended)
            await confirm("This wipes COS_PERSISTENT and redeploys the system from recovery.");
          const info = await withWritablePartition("COS_OEM", (oem) =>
            withWritablePartition("COS_PERSISTENT", (persistent) =>
              withWritablePartition("COS_RECOVERY", (recovery) =>
                withWritablePartition("COS_STATE", (st) =>
                  resetSystem({
                    stateCos: join(st, "cOS"),
                    recoveryCos: join(recovery, "cOS"),
                    persistent,
                    oem,
                    resetOem: opts.resetOem ?? cfg["reset-oem"] === true,
                  }),
                ),
              ),
            ),
          );
          output(
            globals(cmd),
            info,
            () =>
              `active and passive redeployed from recovery (${info.version ?? info.source})\nReset completed`,
          );
          await finish({
            reboot: opts.reboot ?? cfg.reboot === true,
            poweroff: opts.poweroff ?? cfg.poweroff === true,
          });
        },
      ),
    );

  program
    .command("recovery")
    .description("boot the recovery system (sets next_entry=recovery and reboots)")
    .option("--no-reboot", "only set the next boot")
    .action(
      action(async (opts: { reboot: boolean }) => {
        await withWritablePartition("COS_OEM", (oem) =>
          updateGrubenv(join(oem, "grubenv"), { next_entry: "recovery" }),
        );
        process.stdout.write("next boot: recovery\n");
        await finish({ reboot: opts.reboot });
      }),
    );

  program
    .command("bootentry")
    .description("list the boot entries, or select the one for the next boot")
    .option("--select <id>", "boot this entry once, at the next boot (next_entry)")
    .action(
      action(async (opts: { select?: string }, cmd: Command) => {
        const entries = await listBootEntries(await grubConfigs());
        if (opts.select === undefined) {
          const env = await readGrubenv("/oem/grubenv").catch(() => new Map<string, string>());
          const value = { entries, next_entry: env.get("next_entry"), saved_entry: env.get("saved_entry") };
          output(globals(cmd), value, () =>
            entries
              .map((e) => `${e.id}\t${e.title}${env.get("next_entry") === e.id ? "\t(next)" : ""}`)
              .join("\n"),
          );
          return;
        }
        const e = requireEntry(entries, opts.select);
        await withWritablePartition("COS_OEM", (oem) =>
          updateGrubenv(join(oem, "grubenv"), { next_entry: e.id }),
        );
        process.stdout.write(`next boot: ${e.id} (${e.title})\n`);
      }),
    );

  program
    .command("boot-assessment")
    .description(
      "after multi-user: confirm a new active image, or record a fallback boot (run by kairos-boot-assessment.service)",
    )
    .action(
      action(async () => {
        const state = await readNodeState();
        const outcome = await withWritablePartition("COS_OEM", (oem) =>
          assessBoot(state.boot, join(oem, "grubenv")),
        );
        process.stdout.write(`boot assessment: ${outcome}\n`);
      }),
    );
};

/** Ask for "yes" on a terminal; refuse without one (use --unattended). */
async function confirm(what: string): Promise<void> {
  if (!process.stdin.isTTY) {
    throw new KairosError(`${what} No terminal to confirm on`, "pass --unattended to reset without asking");
  }
  const { createInterface } = await import("node:readline/promises");
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const a = await rl.question(`${what} Type "yes" to go on: `);
    if (a.trim() !== "yes") throw new KairosError("reset cancelled", "nothing was changed");
  } finally {
    rl.close();
  }
}
