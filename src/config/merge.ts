import { formatKeyPath } from "./errors.js";
import { locate, type ParsedConfig } from "./parse.js";

/** The merged config and, for every leaf value, the "file:line" it came from. */
export interface MergedConfig {
  value: Record<string, unknown>;
  sources: Map<string, string>;
}

type Path = (string | number)[];

function isMapValue(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function isScalar(v: unknown): boolean {
  return v === null || (typeof v !== "object" && typeof v !== "function");
}

function deepEqual(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

/**
 * Merge configs in order; later ones win. The rules (Kairos' documented behaviour):
 * - maps are merged key by key, recursively;
 * - lists of maps (users, stage steps, files, …) are concatenated;
 * - lists of scalars (ssh keys, groups, bind_mounts, …) are unioned, first occurrence kept;
 * - anything else (scalars, or a type change) is replaced by the later value.
 * Stages accumulate because each stage is a list of step maps.
 */
export function mergeConfigs(configs: readonly ParsedConfig[]): MergedConfig {
  const value: Record<string, unknown> = {};
  const sources = new Map<string, string>();
  for (const cfg of configs) mergeMap(value, cfg.value, [], [], cfg, sources);
  return { value, sources };
}

function record(cfg: ParsedConfig, v: unknown, at: Path, orig: Path, sources: Map<string, string>): void {
  if (Array.isArray(v)) {
    if (v.length === 0) sources.set(formatKeyPath(at), where(cfg, orig));
    v.forEach((x, i) => {
      record(cfg, x, [...at, i], [...orig, i], sources);
    });
  } else if (isMapValue(v)) {
    const keys = Object.keys(v);
    if (keys.length === 0) sources.set(formatKeyPath(at), where(cfg, orig));
    for (const k of keys) record(cfg, v[k], [...at, k], [...orig, k], sources);
  } else {
    sources.set(formatKeyPath(at), where(cfg, orig));
  }
}

function where(cfg: ParsedConfig, orig: Path): string {
  return `${cfg.file}:${locate(cfg, orig).line}`;
}

function forget(at: Path, sources: Map<string, string>): void {
  const p = formatKeyPath(at);
  for (const k of [...sources.keys()]) {
    if (k === p || k.startsWith(`${p}.`) || k.startsWith(`${p}[`)) sources.delete(k);
  }
}

/** Define an own property, so that a key named "__proto__" stays data and never a prototype. */
function setOwn(target: Record<string, unknown>, k: string, v: unknown): void {
  Object.defineProperty(target, k, { value: v, enumerable: true, writable: true, configurable: true });
}

function mergeMap(
  target: Record<string, unknown>,
  src: Record<string, unknown>,
  at: Path,
  orig: Path,
  cfg: ParsedConfig,
  sources: Map<string, string>,
): void {
  for (const [k, v] of Object.entries(src)) {
    const here = [...at, k];
    const from = [...orig, k];
    const cur = target[k];
    if (!Object.hasOwn(target, k)) {
      setOwn(target, k, clone(v));
      record(cfg, v, here, from, sources);
    } else if (isMapValue(cur) && isMapValue(v)) {
      mergeMap(cur, v, here, from, cfg, sources);
    } else if (Array.isArray(cur) && Array.isArray(v)) {
      if (cur.every(isScalar) && v.every(isScalar)) {
        v.forEach((x, i) => {
          if (cur.some((y) => deepEqual(x, y))) return;
          cur.push(x);
          record(cfg, x, [...here, cur.length - 1], [...from, i], sources);
        });
      } else {
        v.forEach((x, i) => {
          cur.push(clone(x));
          record(cfg, x, [...here, cur.length - 1], [...from, i], sources);
        });
      }
    } else if (v === null && (Array.isArray(cur) || isMapValue(cur))) {
      // `boot:` with nothing under it adds nothing; it does not erase earlier steps.
    } else {
      if (isScalar(cur)) sources.delete(formatKeyPath(here));
      else forget(here, sources);
      setOwn(target, k, clone(v));
      record(cfg, v, here, from, sources);
    }
  }
}
