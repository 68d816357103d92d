import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import { ConfigError, type ConfigNote, formatKeyPath, type KeyPath } from "./errors.js";
import { locate, type ParsedConfig } from "./parse.js";
import { compilePattern, PatternError } from "./pattern.js";
import { CLOUD_CONFIG_SCHEMA } from "./schema.js";
import { parseTemplate, TemplateError } from "./template.js";

type Schema = Record<string, unknown>;

/**
 * The schema as validated: every list or map may also be null. A key whose items are all
 * commented out (`ssh_authorized_keys:` then only `# - github:me`) is YAML null; Go's decoder
 * reads it as empty and so do we (see dropNullCollections).
 */
function nullable(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(nullable);
  if (schema === null || typeof schema !== "object") return schema;
  const out: Schema = {};
  for (const [k, v] of Object.entries(schema as Schema)) {
    out[k] = k === "enum" || k === "x-known-keys" ? v : nullable(v);
  }
  const t = out.type;
  const types = Array.isArray(t) ? t : t === undefined ? [] : [t];
  if (types.includes("array") || types.includes("object")) out.type = [...types, "null"];
  if (Array.isArray(out.anyOf)) {
    const alts = out.anyOf as Schema[];
    if (alts.some((a) => a.type === "array" || a.type === "object")) out.anyOf = [...alts, { type: "null" }];
  }
  return out;
}

/** The Ajv options of the config validator (also those of its build-time copy, below). */
export const CONFIG_VALIDATOR_OPTIONS = { allErrors: true, strict: false, verbose: true } as const;

/** The schema the config validator checks: the cloud-config schema, collections nullable. */
export function validatedConfigSchema(): Schema {
  return nullable(CLOUD_CONFIG_SCHEMA) as Schema;
}

/**
 * Set by scripts/build-agent (esbuild --inject): the same validator compiled at build time
 * (Ajv's standalone code), so an agent start does not compile the schema — under emulation
 * that is ~3 s of CPU and ~70 MB of memory per start (docs/benchmarks.md).
 */
declare const __KAIROS_CONFIG_VALIDATOR__: ValidateFunction | undefined;

let compiled: ValidateFunction | undefined;
function validator(): ValidateFunction {
  if (!compiled) {
    compiled =
      typeof __KAIROS_CONFIG_VALIDATOR__ === "function"
        ? __KAIROS_CONFIG_VALIDATOR__
        : new Ajv(CONFIG_VALIDATOR_OPTIONS).compile(validatedConfigSchema());
  }
  return compiled;
}

function schemaExpectsCollection(s: Schema | undefined): boolean {
  if (!s) return false;
  const t = s.type;
  const types = Array.isArray(t) ? t : [t];
  if (types.includes("array") || types.includes("object")) return true;
  return (
    Array.isArray(s.anyOf) && (s.anyOf as Schema[]).some((a) => a.type === "array" || a.type === "object")
  );
}

/**
 * Remove keys whose value is null where the schema expects a list or a map, so that every
 * consumer sees "not set" rather than null (Go decodes such a key to an empty value). Walks
 * only what the schema describes.
 */
export function dropNullCollections(value: unknown, schema: Schema = CLOUD_CONFIG_SCHEMA): void {
  if (value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    const items = schema.items as Schema | undefined;
    if (items) for (const v of value) dropNullCollections(v, pickAlt(items, v));
    return;
  }
  const props = (schema.properties ?? {}) as Record<string, Schema>;
  const extra = schema.additionalProperties as Schema | undefined;
  const obj = value as Record<string, unknown>;
  for (const k of Object.keys(obj)) {
    const s = props[k] ?? extra;
    if (!s) continue;
    if (obj[k] === null && schemaExpectsCollection(s)) delete obj[k];
    else dropNullCollections(obj[k], pickAlt(s, obj[k]));
  }
}

function pickAlt(s: Schema, v: unknown): Schema {
  if (!Array.isArray(s.anyOf)) return s;
  return (s.anyOf as Schema[]).find((a) => matchesType(a, v)) ?? s;
}

/** What validation found: errors make the config unusable, warnings do not. */
export interface ValidationResult {
  errors: ConfigError[];
  warnings: ConfigNote[];
}

/** Check a parsed config against the schema: typed errors with positions, unknown-key warnings. */
export function validateConfig(cfg: ParsedConfig): ValidationResult {
  try {
    return validateUnguarded(cfg);
  } catch (err) {
    // A bug of ours must not take the agent down at boot, nor show engine text: the file is
    // refused with a plain message (KAIROS_DEBUG=1 shows what happened).
    if (process.env.KAIROS_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return {
      errors: [
        new ConfigError(
          cfg.file,
          1,
          1,
          "",
          "this config could not be validated (an internal error of kairos-ts; please report it)",
        ),
      ],
      warnings: [],
    };
  }
}

function validateUnguarded(cfg: ParsedConfig): ValidationResult {
  const validate = validator();
  const errors: ConfigError[] = [];
  if (!validate(cfg.value)) errors.push(...mapAjvErrors(cfg, validate.errors ?? []));
  else errors.push(...crossChecks(cfg), ...templateChecks(cfg), ...patternChecks(cfg));
  dropNullCollections(cfg.value);
  const warnings: ConfigNote[] = [];
  const url = cfg.value.config_url;
  if (typeof url === "string" && url !== "" && !/^https?:\/\//i.test(url)) {
    const { line, col } = locate(cfg, ["config_url"]);
    warnings.push({
      level: "warning",
      file: cfg.file,
      line,
      col,
      keyPath: "config_url",
      message: `${JSON.stringify(url.length > 60 ? `${url.slice(0, 57)}...` : url)} is not an http:// or https:// URL; it will not be fetched`,
    });
  }
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

const isObj = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** Rules upstream's schema states with oneOf/required that are clearer as checks of their own. */
function crossChecks(cfg: ParsedConfig): ConfigError[] {
  const out: ConfigError[] = [];
  const v = cfg.value;
  const err = (path: KeyPath, detail: string, hint?: string) => {
    const { line, col } = locate(cfg, path);
    out.push(new ConfigError(cfg.file, line, col, path, detail, hint));
  };
  const install = isObj(v.install) ? v.install : undefined;
  if (install?.reboot === true && install.poweroff === true) {
    err(
      ["install", "poweroff"],
      "install.reboot and install.poweroff cannot both be true",
      "keep one of them",
    );
  }
  if (install?.ssh_hardening === true) {
    const users = Array.isArray(v.users) ? v.users : [];
    const hasKey =
      (Array.isArray(v.ssh_authorized_keys) && v.ssh_authorized_keys.length > 0) ||
      users.some((u) => isObj(u) && Array.isArray(u.ssh_authorized_keys) && u.ssh_authorized_keys.length > 0);
    if (!hasKey) {
      err(
        ["install", "ssh_hardening"],
        "ssh_hardening turns off SSH password login, but no user has an SSH key",
        "add ssh_authorized_keys to a user, or drop ssh_hardening",
      );
    }
  }
  if (isObj(v.p2p)) {
    const p = v.p2p;
    const token = typeof p.network_token === "string" ? p.network_token : "";
    const auto = isObj(p.auto) ? p.auto : undefined;
    if (token === "" && auto?.enable !== false) {
      err(
        ["p2p", Object.hasOwn(p, "network_token") ? "network_token" : ""].filter(Boolean),
        "p2p needs a network_token (or p2p.auto.enable: false for a network without one)",
        "generate one with `kairos-agent generate-token` on upstream Kairos",
      );
    }
    const ha = isObj(auto?.ha) ? auto.ha : undefined;
    if (ha?.enable === true && auto?.enable === false) {
      err(
        ["p2p", "auto", "ha", "enable"],
        "p2p.auto.ha needs p2p.auto.enable (HA roles are assigned automatically)",
      );
    }
  }
  return out;
}

/** The values upstream renders as Go templates: hostnames, commands, file contents, entities. */
function templatedValues(v: Record<string, unknown>): [KeyPath, string][] {
  const out: [KeyPath, string][] = [];
  if (typeof v.hostname === "string") out.push([["hostname"], v.hostname]);
  const stages = isObj(v.stages) ? v.stages : {};
  for (const [name, steps] of Object.entries(stages)) {
    if (!Array.isArray(steps)) continue;
    steps.forEach((step, i) => {
      if (!isObj(step)) return;
      const at: KeyPath = ["stages", name, i];
      if (typeof step.hostname === "string") out.push([[...at, "hostname"], step.hostname]);
      if (Array.isArray(step.commands))
        step.commands.forEach((c, j) => {
          if (typeof c === "string") out.push([[...at, "commands", j], c]);
        });
      if (Array.isArray(step.files))
        step.files.forEach((f, j) => {
          if (isObj(f) && typeof f.content === "string")
            out.push([[...at, "files", j, "content"], f.content]);
        });
      for (const key of ["ensure_entities", "delete_entities"]) {
        const list = step[key];
        if (Array.isArray(list))
          list.forEach((e, j) => {
            if (isObj(e) && typeof e.entity === "string") out.push([[...at, key, j, "entity"], e.entity]);
          });
      }
    });
  }
  return out.filter(([, text]) => text.includes("{{"));
}

/** only_os, only_os_version and only_arch must be patterns the linear-time matcher takes. */
function patternChecks(cfg: ParsedConfig): ConfigError[] {
  const out: ConfigError[] = [];
  const stages = isObj(cfg.value.stages) ? cfg.value.stages : {};
  for (const [name, steps] of Object.entries(stages)) {
    if (!Array.isArray(steps)) continue;
    steps.forEach((step, i) => {
      if (!isObj(step)) return;
      for (const key of ["only_os", "only_os_version", "only_arch"]) {
        const v = step[key];
        if (typeof v !== "string" || v === "") continue;
        try {
          compilePattern(v);
        } catch (err) {
          if (!(err instanceof PatternError)) throw err;
          const path: KeyPath = ["stages", name, i, key];
          const { line, col } = locate(cfg, path);
          out.push(
            new ConfigError(
              cfg.file,
              line,
              col,
              path,
              `not a supported regular expression: ${err.message} (at character ${err.offset + 1})`,
              "use literals, ., [classes], |, ( ), * + ? and {n,m}; see docs/cloud-config.md",
            ),
          );
        }
      }
    });
  }
  return out;
}

/** A template that does not parse, or calls a function we do not have, is an error at its value. */
function templateChecks(cfg: ParsedConfig): ConfigError[] {
  const out: ConfigError[] = [];
  for (const [path, text] of templatedValues(cfg.value)) {
    try {
      parseTemplate(text);
    } catch (err) {
      if (!(err instanceof TemplateError)) throw err;
      const { line, col } = locate(cfg, path);
      out.push(
        new ConfigError(
          cfg.file,
          line,
          col,
          path,
          `template: ${err.message} (at character ${err.offset + 1} of the value)`,
          "see docs/cloud-config.md for the template functions kairos-ts has",
        ),
      );
    }
  }
  return out;
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
  if (Array.isArray(v)) return v.length ? "a list" : "an empty list";
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
      const list = (Array.isArray(t) ? t : String(t).split(",")).filter((x) => x !== "null");
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
    case "minItems":
      return typeof ps?.["x-expected-minItems"] === "string"
        ? ps["x-expected-minItems"]
        : `at least ${(e.params as { limit: number }).limit} item(s)`;
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
      if (types.length > 1) expected = [...new Set(types.map(expectedFrom).filter(Boolean))].join(" or ");
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
    // Bundles read their own top-level blocks (metallb:, example: in kairos-docs Advanced/bundles.md).
    const forBundle = path.length === 0 && !s.length && usesBundles(cfg.value);
    out.push(
      note(
        cfg,
        sub,
        `unknown key, ignored${s.length ? ` — did you mean ${quoteList(s)}?` : forBundle ? " by kairos-ts (a bundle may read it)" : ""}`,
      ),
    );
  }
}

function usesBundles(value: unknown): boolean {
  const v = value as { bundles?: unknown; install?: { bundles?: unknown } } | null;
  return Array.isArray(v?.bundles) || Array.isArray(v?.install?.bundles);
}

function quoteList(names: string[]): string {
  return names.map((n) => `"${n}"`).join(" or ");
}

function note(cfg: ParsedConfig, path: KeyPath, message: string): ConfigNote {
  const { line, col } = locate(cfg, path, true);
  return { level: "warning", file: cfg.file, line, col, keyPath: formatKeyPath(path), message };
}
