import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { configFromCmdline } from "./cmdline.js";
import { ConfigError, type ConfigNote } from "./errors.js";
import { type MergedConfig, mergeConfigs } from "./merge.js";
import { CONFIG_HEADERS, locate, type ParsedConfig, parseCloudConfig, parseYamlConfig } from "./parse.js";
import { resolveInRoot } from "./rootpath.js";
import { validateConfig } from "./validate.js";

/**
 * Directories read for the node's config, first to last; later files override earlier ones.
 * This is kairos-agent's order (baked-in first, writable last): the live medium, /etc/kairos
 * (shipped in the image), /usr/local/cloud-config (COS_PERSISTENT), /oem (COS_OEM, datasources).
 * Some older Kairos docs list /usr/local/cloud-config before /etc/kairos; the agent's code does not.
 */
export const CONFIG_DIRS = ["/run/initramfs/live", "/etc/kairos", "/usr/local/cloud-config", "/oem"] as const;

/** Defaults shipped inside the OS image; read first, and only for the boot stages. */
export const SYSTEM_CONFIG_DIR = "/system/oem";

/** Largest config file or config_url body accepted. */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;

export interface FetchOptions {
  /** Attempts per URL (default 3). */
  attempts?: number;
  /** Per-attempt timeout in ms (default 10 000). */
  timeoutMs?: number;
  /** First retry delay in ms, doubled each time (default 500). */
  backoffMs?: number;
  /** How many config_url hops may follow each other (default 5). */
  maxDepth?: number;
}

export interface CollectOptions {
  /** Root directory the config directories live under (default "/"). */
  root?: string;
  /** Directories to read instead of CONFIG_DIRS (relative to root). */
  dirs?: readonly string[];
  /** Read /system/oem first (the boot stages do). */
  includeSystem?: boolean;
  /**
   * Also read directory files without a header as yip stage files (only `name` and `stages`),
   * as yip does for stages. Default: true when includeSystem is set.
   */
  acceptYip?: boolean;
  /** Extra files or http(s) URLs read after the directories (e.g. `validate FILE`). */
  extra?: readonly string[];
  /** Kernel command line text; undefined reads <root>/proc/cmdline; false skips it. */
  cmdline?: string | false;
  fetch?: FetchOptions;
}

export interface Collected {
  merged: MergedConfig;
  /** Every config that took part, in merge order. */
  configs: ParsedConfig[];
  /** Files skipped, unknown keys and other non-fatal remarks. */
  notes: ConfigNote[];
  /** Files that failed to parse or validate; they are left out of the merge. */
  errors: ConfigError[];
}

/** List the config files of one directory: *.yaml / *.yml, lexical order, not recursive. */
export function listConfigFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => /\.ya?ml$/.test(n))
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => {
      try {
        return statSync(p).isFile();
      } catch {
        return false;
      }
    });
}

/** Read a response body, refusing it as soon as it passes `limit` bytes (never buffering more). */
async function readCapped(res: Response, limit: number): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? "0");
  if (declared > limit) throw new Error(`larger than ${limit} bytes`);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = res.body?.getReader();
  if (!reader) return "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new Error(`larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}

/** Fetch a config_url body: http(s) only, retries with backoff on network errors and 5xx. */
export async function fetchConfigText(url: string, opts: FetchOptions = {}): Promise<string> {
  if (!/^https?:\/\//i.test(url)) throw new Error(`only http:// and https:// URLs are fetched, not ${url}`);
  const attempts = opts.attempts ?? 3;
  let delay = opts.backoffMs ?? 500;
  let last = "";
  for (let i = 1; i <= attempts; i++) {
    try {
      const res = await fetch(url, {
        signal: AbortSignal.timeout(opts.timeoutMs ?? 10_000),
        redirect: "follow",
      });
      if (res.ok) return await readCapped(res, MAX_CONFIG_BYTES);
      last = `HTTP ${res.status}`;
      if (res.status < 500 && res.status !== 429) break; // a client error will not change on retry
    } catch (err) {
      last = (err as Error).message;
      if (/larger than/.test(last)) break;
    }
    if (i < attempts) {
      await new Promise((r) => setTimeout(r, delay));
      delay *= 2;
    }
  }
  throw new Error(`${last} (after ${attempts} attempt${attempts > 1 ? "s" : ""})`);
}

/** Read and parse one file inside root; errors and skip notes go to the lists. */
function loadFile(
  root: string,
  path: string,
  notes: ConfigNote[],
  errors: ConfigError[],
  acceptYip = false,
): ParsedConfig | undefined {
  const label = root === "/" ? path : join(root, path);
  let text: string;
  try {
    const real = resolveInRoot(root, path);
    const st = statSync(real);
    if (st.size > MAX_CONFIG_BYTES) {
      errors.push(new ConfigError(label, 1, 1, "", `file is larger than ${MAX_CONFIG_BYTES} bytes`));
      return undefined;
    }
    text = readFileSync(real, "utf8");
  } catch (err) {
    errors.push(new ConfigError(label, 1, 1, "", `cannot read: ${(err as Error).message}`));
    return undefined;
  }
  return parseText(text, label, notes, errors, acceptYip);
}

function parseText(
  text: string,
  label: string,
  notes: ConfigNote[],
  errors: ConfigError[],
  acceptYip = false,
): ParsedConfig | undefined {
  try {
    const out = parseCloudConfig(text, label);
    if ("skipped" in out) {
      const yip = acceptYip ? yipConfig(text, label, notes) : undefined;
      if (!yip) {
        notes.push(out.skipped);
        return undefined;
      }
      return checked(yip, notes, errors);
    }
    return checked(out.config, notes, errors);
  } catch (err) {
    if (err instanceof ConfigError) {
      errors.push(err);
      return undefined;
    }
    throw err;
  }
}

/**
 * A file without a header read the way yip reads it: only `name` and `stages` count (the
 * Kairos image's own /system/oem files are written like that). Files without `stages` are not
 * configs at all and are skipped by the caller.
 */
function yipConfig(text: string, label: string, notes: ConfigNote[]): ParsedConfig | undefined {
  let cfg: ParsedConfig;
  try {
    cfg = parseYamlConfig(text, label);
  } catch {
    return undefined;
  }
  if (!Object.hasOwn(cfg.value, "stages")) return undefined;
  const ignored = Object.keys(cfg.value).filter((k) => k !== "stages" && k !== "name");
  for (const k of ignored) {
    const { line, col } = locate(cfg, [k], true);
    notes.push({
      level: "warning",
      file: label,
      line,
      col,
      keyPath: k,
      message: `ignored: a file without a ${CONFIG_HEADERS[0]} header is read as yip stages (only "name" and "stages" count)`,
    });
  }
  const value: Record<string, unknown> = { stages: cfg.value.stages };
  if (cfg.value.name !== undefined) value.name = cfg.value.name;
  return { ...cfg, value };
}

function checked(cfg: ParsedConfig, notes: ConfigNote[], errors: ConfigError[]): ParsedConfig | undefined {
  const v = validateConfig(cfg);
  notes.push(...v.warnings);
  if (v.errors.length) {
    errors.push(...v.errors);
    return undefined;
  }
  return cfg;
}

/**
 * Follow `config_url` from `cfg` (and from what it fetches, up to maxDepth hops, never the same
 * URL twice). Fetched configs are returned in order; each overrides the one that named it.
 */
async function followUrls(
  cfg: ParsedConfig,
  opts: FetchOptions,
  seen: Set<string>,
  notes: ConfigNote[],
  errors: ConfigError[],
  depth = 0,
): Promise<ParsedConfig[]> {
  const url = cfg.value.config_url;
  // A template or other non-URL value was already warned about by the validator; upstream's
  // collector ignores what it cannot fetch too.
  if (typeof url !== "string" || !/^https?:\/\//i.test(url)) return [];
  const { line, col } = locate(cfg, ["config_url"]);
  const maxDepth = opts.maxDepth ?? 5;
  if (seen.has(url)) {
    notes.push({
      level: "warning",
      file: cfg.file,
      line,
      col,
      keyPath: "config_url",
      message: `${url} was already read; not following it again`,
    });
    return [];
  }
  if (depth >= maxDepth) {
    errors.push(
      new ConfigError(cfg.file, line, col, "config_url", `too many config_url hops (more than ${maxDepth})`),
    );
    return [];
  }
  seen.add(url);
  let text: string;
  try {
    text = await fetchConfigText(url, opts);
  } catch (err) {
    errors.push(
      new ConfigError(cfg.file, line, col, "config_url", `could not fetch ${url}: ${(err as Error).message}`),
    );
    return [];
  }
  const got = parseText(text, url, notes, errors);
  if (!got) return [];
  return [got, ...(await followUrls(got, opts, seen, notes, errors, depth + 1))];
}

/** Read a config from a path inside root or from an http(s) URL, following its config_url. */
export async function loadSource(
  source: string,
  opts: { root?: string; fetch?: FetchOptions } = {},
): Promise<{ configs: ParsedConfig[]; notes: ConfigNote[]; errors: ConfigError[] }> {
  const notes: ConfigNote[] = [];
  const errors: ConfigError[] = [];
  let cfg: ParsedConfig | undefined;
  if (/^https?:\/\//i.test(source)) {
    try {
      cfg = parseText(await fetchConfigText(source, opts.fetch), source, notes, errors);
    } catch (err) {
      errors.push(new ConfigError(source, 1, 1, "", `could not fetch: ${(err as Error).message}`));
    }
  } else {
    const root = opts.root ?? "/";
    // On the running system a relative path means the current directory, as users expect.
    cfg = loadFile(root, root === "/" ? resolve(source) : source, notes, errors);
  }
  const configs = cfg
    ? [cfg, ...(await followUrls(cfg, opts.fetch ?? {}, new Set([source]), notes, errors))]
    : [];
  return { configs, notes, errors };
}

/**
 * Gather the node's config: every directory in order (files lexically), then extra sources,
 * then the kernel command line, each followed by what its config_url points to; validate each
 * and merge. Files with errors are reported and left out; the rest still merge.
 */
export async function collectConfig(opts: CollectOptions = {}): Promise<Collected> {
  const root = opts.root ?? "/";
  const notes: ConfigNote[] = [];
  const errors: ConfigError[] = [];
  const configs: ParsedConfig[] = [];
  const seen = new Set<string>();
  const fetchOpts = opts.fetch ?? {};
  const add = async (cfg: ParsedConfig | undefined) => {
    if (!cfg) return;
    configs.push(cfg, ...(await followUrls(cfg, fetchOpts, seen, notes, errors)));
  };
  const dirs = [...(opts.includeSystem ? [SYSTEM_CONFIG_DIR] : []), ...(opts.dirs ?? CONFIG_DIRS)];
  const acceptYip = opts.acceptYip ?? opts.includeSystem === true;
  const readDir = async (dir: string) => {
    let real: string;
    try {
      real = resolveInRoot(root, dir);
    } catch (err) {
      errors.push(new ConfigError(root === "/" ? dir : join(root, dir), 1, 1, "", (err as Error).message));
      return;
    }
    for (const f of listConfigFiles(real)) {
      await add(loadFile(root, join(dir, f.slice(real.length + 1)), notes, errors, acceptYip));
    }
  };
  for (const dir of dirs) await readDir(dir);
  // `cloud-init-paths` names more directories of stage files (yip reads them too); read them
  // after the standard ones, each once.
  if (acceptYip) {
    const done = new Set(dirs);
    for (let i = 0; i < configs.length; i++) {
      const extraDirs = configs[i]!.value["cloud-init-paths"];
      if (!Array.isArray(extraDirs)) continue;
      for (const d of extraDirs.map(String)) {
        if (done.has(d)) continue;
        done.add(d);
        await readDir(d);
      }
    }
  }
  for (const src of opts.extra ?? []) {
    const r = await loadSource(src, { root, fetch: fetchOpts });
    configs.push(...r.configs);
    notes.push(...r.notes);
    errors.push(...r.errors);
  }
  if (opts.cmdline !== false) {
    let line = opts.cmdline;
    const label = root === "/" ? "/proc/cmdline" : join(root, "proc/cmdline");
    if (line === undefined) {
      try {
        line = readFileSync(resolveInRoot(root, "/proc/cmdline"), "utf8");
      } catch {
        line = "";
      }
    }
    try {
      const cfg = configFromCmdline(line, label, []);
      if (cfg) await add(checked(cfg, notes, errors));
    } catch (err) {
      if (err instanceof ConfigError) errors.push(err);
      else throw err;
    }
  }
  return { merged: mergeConfigs(configs), configs, notes, errors };
}
