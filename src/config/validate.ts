import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { ConfigError, type ConfigNote, formatKeyPath, type KeyPath } from "./errors.js";
import { locate, type ParsedConfig } from "./parse.js";
import { CLOUD_CONFIG_SCHEMA } from "./schema.js";

type Schema = Record<string, unknown>;

let compiled: ValidateFunction | undefined;
function validator(): ValidateFunction {
  if (!compiled) {
    const ajv = new Ajv({ allErrors: true, strict: false, verbose: true });
    compiled = ajv.compile(CLOUD_CONFIG_SCHEMA);
  }
  return compiled;
}

/** What validation found: errors make the config unusable, warnings do not. */
export interface ValidationResult {
  errors: ConfigError[];
  warnings: ConfigNote[];
}

/** Check a parsed config against the schema: typed errors with positions, unknown-key warnings. */
export function validateConfig(cfg: ParsedConfig): ValidationResult {
  const validate = validator();
  const errors: ConfigError[] = [];
  if (!validate(cfg.value)) errors.push(...mapAjvErrors(cfg, validate.errors ?? []));
  const warnings: ConfigNote[] = [];
  walkUnknown(CLOUD_CONFIG_SCHEMA, cfg.value, [], cfg, warnings);
  // `permissions: 644` is the decimal number 644 (octal 01204), almost never what was meant.
  for (const [keyPath, pos] of cfg.positions) {
    // Only where the digits read as an octal mode and the decimal value sets bits above 0777
    // (644 is 0o1204, sticky): `permissions: 420` (= 0644) is left alone.
    if (pos.raw === undefined || !/^[1-7][0-7]{2,3}$/.test(pos.raw)) continue;
    const n = Number(pos.raw);
    if (n <= 0o777) continue;
    warnings.push({
      level: "warning",
      file: cfg.file,
      line: pos.line,
      col: pos.col,
      keyPath,
      message: `${pos.raw} is a decimal number (octal 0${n.toString(8)}); write 0${pos.raw} for the mode ${pos.raw} means in chmod`,
    });
  }
  errors.sort((a, b) => a.line - b.line || a.col - b.col);
  warnings.sort((a, b) => a.line - b.line || a.col - b.col);
  return { errors, warnings };
}

function parsePointer(p: string): (string | number)[] {
  if (!p) return [];
  return p
    .slice(1)
    .split("/")
    .map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "object") return "a map";
  if (typeof v === "string") return `${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)}`;
  return `${typeof v} ${String(v)}`;
}

const TYPE_WORDS: Record<string, string> = {
  string: "a string",
  integer: "a whole number",
  number: "a number",
  boolean: "true or false",
  array: "a list",
  object: "a map",
  null: "nothing",
};

function expectedFrom(e: ErrorObject): string {
  const ps = e.parentSchema as Schema | undefined;
  if (ps && typeof ps["x-expected"] === "string") return ps["x-expected"];
  switch (e.keyword) {
    case "type": {
      const t = (e.params as { type: string | string[] }).type;
      const list = Array.isArray(t) ? t : String(t).split(",");
      return list.map((x) => TYPE_WORDS[x] ?? x).join(" or ");
    }
    case "enum":
      return `one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(", ")}`;
    case "pattern":
      return `a value matching /${(e.params as { pattern: string }).pattern}/`;
    case "minimum":
      return `a number ≥ ${(e.params as { limit: number }).limit}`;
    case "maximum":
      return `a number ≤ ${(e.params as { limit: number }).limit}`;
    case "minLength":
      return "a non-empty string";
    default:
      return e.message ?? "a valid value";
  }
}

/** Turn ajv's errors into one ConfigError per offending value, the most specific one wins. */
function mapAjvErrors(cfg: ParsedConfig, errs: ErrorObject[]): ConfigError[] {
  const out: ConfigError[] = [];
  const byPath = new Map<string, ErrorObject[]>();
  for (const e of errs) {
    if (e.keyword === "required") {
      const path = parsePointer(e.instancePath);
      const missing = (e.params as { missingProperty: string }).missingProperty;
      const { line, col } = locate(cfg, path);
      out.push(new ConfigError(cfg.file, line, col, path, `missing required key "${missing}"`));
      continue;
    }
    const list = byPath.get(e.instancePath) ?? [];
    list.push(e);
    byPath.set(e.instancePath, list);
  }
  const paths = [...byPath.keys()];
  for (const [ptr, list] of byPath) {
    // An error deeper inside this value explains it better (e.g. one bad list item).
    if (paths.some((p) => p !== ptr && p.startsWith(`${ptr}/`))) continue;
    const preferred = list.find(
      (e) => typeof (e.parentSchema as Schema | undefined)?.["x-expected"] === "string",
    );
    const e = preferred ?? list.find((x) => x.keyword !== "anyOf") ?? list[0]!;
    const path = parsePointer(ptr);
    let expected = expectedFrom(e);
    if (!preferred) {
      const types = list.filter((x) => x.keyword === "type");
      if (types.length > 1) expected = [...new Set(types.map(expectedFrom))].join(" or ");
    }
    const { line, col } = locate(cfg, path);
    out.push(new ConfigError(cfg.file, line, col, path, `expected ${expected}, got ${typeName(e.data)}`));
  }
  return out;
}

/** Edit distance, with "-" and "_" treated as the same letter. */
export function distance(a: string, b: string): number {
  const x = a.toLowerCase().replace(/-/g, "_");
  const y = b.toLowerCase().replace(/-/g, "_");
  const prev = Array.from({ length: y.length + 1 }, (_, i) => i);
  for (let i = 1; i <= x.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= y.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (x[i - 1] === y[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[y.length]!;
}

/** The known names closest to `name`, for "did you mean …". */
export function suggest(name: string, known: readonly string[]): string[] {
  const limit = Math.max(2, Math.floor(name.length / 3));
  const scored = known.map((k) => [k, distance(name, k)] as const).filter(([, d]) => d <= limit);
  scored.sort((a, b) => a[1] - b[1]);
  return scored.slice(0, 3).map(([k]) => k);
}

function matchesType(s: Schema, v: unknown): boolean {
  const t = s.type;
  if (t === undefined) return true;
  const types = Array.isArray(t) ? t : [t];
  return types.some(
    (x) =>
      (x === "object" && v !== null && typeof v === "object" && !Array.isArray(v)) ||
      (x === "array" && Array.isArray(v)) ||
      (x === "null" && v === null) ||
      (x === "string" && typeof v === "string") ||
      ((x === "number" || x === "integer") && typeof v === "number") ||
      (x === "boolean" && typeof v === "boolean"),
  );
}

/** Warn about keys the schema does not know, with suggestions; descend into known ones. */
function walkUnknown(
  schema: Schema,
  value: unknown,
  path: KeyPath,
  cfg: ParsedConfig,
  out: ConfigNote[],
): void {
  if (Array.isArray(schema.anyOf)) {
    const alt = (schema.anyOf as Schema[]).find((s) => matchesType(s, value));
    if (alt) walkUnknown(alt, value, path, cfg, out);
    return;
  }
  if (Array.isArray(value)) {
    const items = schema.items as Schema | undefined;
    if (items) {
      value.forEach((v, i) => {
        walkUnknown(items, v, [...path, i], cfg, out);
      });
    }
    return;
  }
  if (value === null || typeof value !== "object" || schema["x-open"]) return;
  const props = (schema.properties ?? {}) as Record<string, Schema>;
  const extra = schema.additionalProperties as Schema | undefined;
  const knownKeys = schema["x-known-keys"] as readonly string[] | undefined;
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const sub = [...path, k];
    const ps = props[k];
    if (ps) {
      walkUnknown(ps, v, sub, cfg, out);
      continue;
    }
    if (extra) {
      if (knownKeys && !knownKeys.includes(k)) {
        const s = suggest(k, knownKeys);
        out.push(
          note(
            cfg,
            sub,
            `unknown stage name${s.length ? ` — did you mean ${quoteList(s)}?` : " (it runs only if invoked by that name)"}`,
          ),
        );
      }
      walkUnknown(extra, v, sub, cfg, out);
      continue;
    }
    if (!schema.properties) continue;
    const s = suggest(k, Object.keys(props));
    out.push(note(cfg, sub, `unknown key, ignored${s.length ? ` — did you mean ${quoteList(s)}?` : ""}`));
  }
}

function quoteList(names: string[]): string {
  return names.map((n) => `"${n}"`).join(" or ");
}

function note(cfg: ParsedConfig, path: KeyPath, message: string): ConfigNote {
  const { line, col } = locate(cfg, path, true);
  return { level: "warning", file: cfg.file, line, col, keyPath: formatKeyPath(path), message };
}
