import { existsSync, realpathSync, statSync } from "node:fs";
import { arch } from "node:os";
import { isAbsolute, join } from "node:path";
import {
  type Collected,
  type CollectOptions,
  ConfigErrors,
  collectConfig,
  compilePattern,
  formatNote,
  resolveInRoot,
  type SafePattern,
  SYSTEM_STAGES,
} from "../../config/index.js";
import { KairosError, ToolFailedError } from "../../sys/index.js";
import { evaluateFileTests, type PathResolver } from "./condition.js";
import { readInRoot } from "./fsops.js";
import {
  chooseShell,
  existsInRoot,
  type Step,
  type StepEnv,
  shell,
  stepAuthorizedKeys,
  stepCommands,
  stepDeleteEntities,
  stepDirectories,
  stepDns,
  stepDownloads,
  stepEnsureEntities,
  stepEnvironment,
  stepFiles,
  stepHostname,
  stepModules,
  stepSysctl,
  stepSystemctl,
  stepSystemdFirstboot,
  stepTimesyncd,
  stepUsers,
  UNSUPPORTED_KEYS,
} from "./steps.js";

/** What happened to one step. */
export interface StepResult {
  stage: string;
  index: number;
  name: string;
  status: "ok" | "skipped" | "failed";
  reason?: string;
}

export interface StageReport {
  stage: string;
  root: string;
  steps: StepResult[];
  failed: number;
  /** Config files that could not be used (they were left out). */
  configErrors: string[];
}

export interface RunStageOptions {
  /** Target root (default "/"). */
  root?: string;
  /** Use this merged config instead of collecting it from the root's config directories. */
  config?: Record<string, unknown>;
  /** Options for collecting the config (root is taken from `root`). */
  collect?: Omit<CollectOptions, "root">;
  /** Override the config's `strict`. */
  strict?: boolean;
  log?: (line: string) => void;
  keyServers?: StepEnv["keyServers"];
  signal?: AbortSignal;
}

/** A failing step under `strict: true`. */
export class StageFailedError extends KairosError {
  override readonly name = "StageFailedError";
}

/** The plugins of one step, in yip's order. */
const PLUGINS: [string, (env: StepEnv, step: Step) => void | Promise<void>][] = [
  ["dns", stepDns],
  ["downloads", stepDownloads],
  ["ensure_entities", stepEnsureEntities],
  ["directories", stepDirectories],
  ["files", stepFiles],
  ["commands", stepCommands],
  ["delete_entities", stepDeleteEntities],
  ["hostname", stepHostname],
  ["sysctl", stepSysctl],
  ["users", stepUsers],
  ["authorized_keys", stepAuthorizedKeys],
  ["modules", stepModules],
  ["timesyncd", stepTimesyncd],
  ["systemctl", stepSystemctl],
  ["environment", stepEnvironment],
  ["systemd_firstboot", stepSystemdFirstboot],
];

function osRelease(root: string): Record<string, string> {
  const text = readInRoot(root, "/etc/os-release") ?? readInRoot(root, "/usr/lib/os-release") ?? "";
  const out: Record<string, string> = {};
  for (const l of text.split("\n")) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(l.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^(["'])(.*)\1$/, "$2");
  }
  return out;
}

/** Architecture in Go's spelling, which only_arch uses. */
export function goArch(a = arch()): string {
  return (
    (
      {
        x64: "amd64",
        ia32: "386",
        arm64: "arm64",
        arm: "arm",
        ppc64: "ppc64le",
        s390x: "s390x",
        riscv64: "riscv64",
      } as Record<string, string>
    )[a] ?? a
  );
}

function serviceManager(root: string): string {
  if (["/usr/lib/systemd/systemd", "/lib/systemd/systemd"].some((p) => existsInRoot(root, p)))
    return "systemd";
  if (["/sbin/openrc", "/sbin/openrc-run", "/usr/sbin/openrc"].some((p) => existsInRoot(root, p)))
    return "openrc";
  return "none";
}

/** A step's only_* pattern, matched in linear time (never compiled by the JavaScript engine). */
function regex(what: string, re: string): SafePattern {
  try {
    return compilePattern(re);
  } catch (err) {
    throw new Error(`${what}: invalid regular expression ${JSON.stringify(re)}: ${(err as Error).message}`);
  }
}

/** Why a step should not run (only_* filters, node, if), or undefined to run it. */
async function skipReason(env: StepEnv, step: Step): Promise<string | undefined> {
  if (typeof step.node === "string" && step.node) {
    const host = readInRoot(env.root, "/etc/hostname")?.trim() ?? "";
    if (host !== step.node) return `node is ${JSON.stringify(step.node)}, this is ${JSON.stringify(host)}`;
  }
  const os = osRelease(env.root);
  if (typeof step.only_os === "string" && step.only_os && !regex("only_os", step.only_os).test(os.ID ?? "")) {
    return `only_os ${step.only_os} does not match ${os.ID ?? "(no ID)"}`;
  }
  if (
    typeof step.only_os_version === "string" &&
    step.only_os_version &&
    !regex("only_os_version", step.only_os_version).test(os.VERSION_ID ?? "")
  ) {
    return `only_os_version ${step.only_os_version} does not match ${os.VERSION_ID ?? "(no VERSION_ID)"}`;
  }
  if (
    typeof step.only_arch === "string" &&
    step.only_arch &&
    !regex("only_arch", step.only_arch).test(goArch())
  ) {
    return `only_arch ${step.only_arch} does not match ${goArch()}`;
  }
  if (typeof step.only_service_manager === "string" && step.only_service_manager) {
    const sm = serviceManager(env.root);
    if (sm !== step.only_service_manager)
      return `only_service_manager ${step.only_service_manager}, this root has ${sm}`;
  }
  if (typeof step.if === "string" && step.if.trim()) {
    // File tests only (the usual form): answered here, as the shell would, without starting one.
    const known = evaluateFileTests(step.if, conditionPaths(env));
    if (known === true) return undefined;
    if (known === false) return `if ${JSON.stringify(step.if)} exited 1`;
    try {
      await shell(env, step.if);
    } catch (err) {
      // A false condition skips the step; failing to run the condition at all (no shell, chroot
      // refused: exit 125) fails it, so a broken environment is never mistaken for "false".
      if (!(err instanceof ToolFailedError) || err.signal !== null) throw err;
      if (env.shell === "chroot" && err.exitCode === 125) throw err;
      return `if ${JSON.stringify(step.if)} exited ${err.exitCode}`;
    }
  }
  return undefined;
}

/**
 * Where an `if:` file test looks, as the shell that would run it sees paths: in a chroot of
 * the root (symlinks kept inside it; resolveInRoot throws on one that leaves, and the shell
 * answers instead), or with the host's sh, whose working directory is the root.
 */
function conditionPaths(env: StepEnv): PathResolver {
  if (env.shell === "chroot") return (p, followLast) => resolveInRoot(env.root, p, { followLast });
  return (p) => (isAbsolute(p) ? p : join(env.root, p));
}

/**
 * The steps of the cloud-init style keys (users, ssh_authorized_keys, write_files, runcmd,
 * hostname) as one step run first in the `boot` stage — where yip puts them.
 */
export function cloudInitStep(cfg: Record<string, unknown>): Step | undefined {
  const step: Step = { name: "cloud-config keys (users, write_files, runcmd, hostname)" };
  const users = (cfg.users as Record<string, unknown>[] | undefined) ?? [];
  const topKeys = (cfg.ssh_authorized_keys as string[] | undefined) ?? [];
  if (users.length) {
    // Each user gets its own keys plus the top-level ssh_authorized_keys. A user listed in
    // several files is one user: later scalars win, groups and keys add up.
    const byName: Record<string, Record<string, unknown>> = {};
    const list = (v: unknown): string[] =>
      Array.isArray(v) ? v.map(String) : typeof v === "string" ? v.split(",") : [];
    for (const u of users) {
      const name = String(u.name);
      const prev = byName[name] ?? {};
      byName[name] = {
        ...prev,
        ...u,
        groups: [...new Set([...list(prev.groups), ...list(u.groups)].map((g) => g.trim()).filter(Boolean))],
        ssh_authorized_keys: [
          ...new Set([...list(prev.ssh_authorized_keys), ...list(u.ssh_authorized_keys), ...topKeys]),
        ],
      };
    }
    step.users = byName;
  } else if (topKeys.length) step.authorized_keys = { root: topKeys };
  if (Array.isArray(cfg.write_files) && cfg.write_files.length) step.files = cfg.write_files;
  if (Array.isArray(cfg.runcmd) && cfg.runcmd.length) {
    step.commands = cfg.runcmd.map((c) =>
      Array.isArray(c) ? c.map((a) => `'${String(a).replace(/'/g, `'\\''`)}'`).join(" ") : c,
    );
  }
  if (typeof cfg.hostname === "string" && cfg.hostname) step.hostname = cfg.hostname;
  return Object.keys(step).length > 1 ? step : undefined;
}

/** The stage names `run-stage NAME` runs: NAME.before, NAME, NAME.after (unless NAME has a suffix). */
export function expandStage(stage: string): string[] {
  return /\.(before|after)$/.test(stage) ? [stage] : [`${stage}.before`, stage, `${stage}.after`];
}

/** The steps of one stage name in the merged config, cloud-init keys first for `boot`. */
export function stepsOf(cfg: Record<string, unknown>, name: string): Step[] {
  const stages = (cfg.stages as Record<string, Step[] | null> | undefined) ?? {};
  const own = (stages[name] ?? []).filter((s): s is Step => s !== null && typeof s === "object");
  if (name === "boot") {
    const ci = cloudInitStep(cfg);
    if (ci) return [ci, ...own];
  }
  return own;
}

/** Run one step: filters, then each plugin; a failing plugin fails the step but the others still run. */
export async function runStep(env: StepEnv, stage: string, index: number, step: Step): Promise<StepResult> {
  const name = typeof step.name === "string" && step.name ? step.name : `step ${index}`;
  const prefix = `${stage}[${index}] ${JSON.stringify(name)}`;
  const log = (l: string) => env.log(`${prefix}: ${l}`);
  const stepEnv: StepEnv = { ...env, log };
  try {
    const why = await skipReason(stepEnv, step);
    if (why) {
      log(`skipped: ${why}`);
      return { stage, index, name, status: "skipped", reason: why };
    }
  } catch (err) {
    const reason = (err as Error).message.split("\n")[0]!;
    log(`failed: ${reason}`);
    return { stage, index, name, status: "failed", reason };
  }
  const failures: string[] = [];
  for (const [key, fn] of PLUGINS) {
    try {
      await fn(stepEnv, step);
    } catch (err) {
      const msg = (err as Error).message;
      log(`${key}: failed: ${msg}`);
      failures.push(`${key}: ${msg.split("\n")[0]}`);
    }
  }
  for (const k of UNSUPPORTED_KEYS) {
    if (step[k] !== undefined && step[k] !== null) log(`${k}: not supported by kairos-ts yet; ignored`);
  }
  if (failures.length) return { stage, index, name, status: "failed", reason: failures.join("; ") };
  log("done");
  return { stage, index, name, status: "ok" };
}

/**
 * Run a stage (with its .before and .after) against a root. Steps run in order; a failing step is
 * logged and the next one runs, unless `strict` is set, which makes the first failure fatal.
 */
export async function runStage(stage: string, opts: RunStageOptions = {}): Promise<StageReport> {
  let root: string;
  try {
    root = realpathSync(opts.root ?? "/");
    if (!statSync(root).isDirectory()) throw new Error("not a directory");
  } catch (err) {
    throw new KairosError(
      `root ${opts.root} is not a usable directory: ${(err as Error).message}`,
      "pass an existing directory to --root",
    );
  }
  const log = opts.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  let cfg = opts.config;
  const configErrors: string[] = [];
  if (!cfg) {
    const base = stage.replace(/\.(before|after)$/, "");
    const collected: Collected = await collectConfig({
      ...opts.collect,
      root,
      includeSystem: opts.collect?.includeSystem ?? (SYSTEM_STAGES as readonly string[]).includes(base),
      acceptYip: opts.collect?.acceptYip ?? true,
    });
    for (const n of collected.notes) log(formatNote(n));
    for (const e of collected.errors) {
      log(`error: ${e.message} (file left out)`);
      configErrors.push(e.message);
    }
    cfg = collected.merged.value;
    if (configErrors.length && (opts.strict ?? cfg.strict === true)) throw new ConfigErrors(collected.errors);
  }
  const strict = opts.strict ?? cfg.strict === true;
  const env: StepEnv = {
    root,
    log,
    systemdRunning: root === "/" && existsSync("/run/systemd/system"),
    shell: chooseShell(root),
    keyServers: opts.keyServers,
    signal: opts.signal,
  };
  log(
    `stage ${stage}: root ${root}, commands run ${env.shell === "chroot" ? `in chroot ${root}` : `with the host's sh in ${root}`}`,
  );
  const results: StepResult[] = [];
  for (const name of expandStage(stage)) {
    const steps = stepsOf(cfg, name);
    if (!steps.length) continue;
    log(`stage ${name}: ${steps.length} step(s)`);
    for (const [i, step] of steps.entries()) {
      const r = await runStep(env, name, i, step);
      results.push(r);
      if (r.status === "failed" && strict) {
        throw new StageFailedError(
          `stage ${name}: step ${i} ${JSON.stringify(r.name)} failed: ${r.reason}`,
          "strict: true makes a failing step fatal; the remaining steps were not run",
        );
      }
    }
  }
  const failed = results.filter((r) => r.status === "failed").length;
  log(
    `stage ${stage}: ${results.length} step(s), ${failed} failed, ${results.filter((r) => r.status === "skipped").length} skipped`,
  );
  return { stage, root, steps: results, failed, configErrors };
}
