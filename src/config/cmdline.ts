import { ConfigError, type ConfigNote, formatKeyPath } from "./errors.js";
import type { NodePos, ParsedConfig } from "./parse.js";
import { CLOUD_CONFIG_SCHEMA } from "./schema.js";

type Schema = Record<string, unknown>;

/** Largest list index accepted in dot notation (keeps `a[999999999]=x` from allocating). */
const MAX_INDEX = 999;

/** A kernel command line word with its 1-based column. */
interface Word {
  text: string;
  col: number;
}

/** Split a kernel command line like the kernel does: spaces separate, double quotes group. */
export function splitCmdline(line: string): Word[] {
  const out: Word[] = [];
  let cur = "";
  let start = -1;
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (c === '"') {
      quoted = !quoted;
      if (start < 0) start = i;
      continue;
    }
    if (!quoted && /\s/.test(c)) {
      if (start >= 0) out.push({ text: cur, col: start + 1 });
      cur = "";
      start = -1;
      continue;
    }
    if (start < 0) start = i;
    cur += c;
  }
  if (start >= 0) out.push({ text: cur, col: start + 1 });
  return out;
}

/** Parse `stages.boot[0].commands[0]` into ["stages", "boot", 0, "commands", 0]; undefined if malformed. */
export function parseDotPath(key: string): (string | number)[] | undefined {
  const out: (string | number)[] = [];
  const re = /^([A-Za-z0-9_-]+)((?:\[\d+\])*)(?:\.|$)/;
  let rest = key;
  while (rest.length > 0) {
    const m = re.exec(rest);
    if (!m) return undefined;
    out.push(m[1]!);
    for (const idx of m[2]!.matchAll(/\[(\d+)\]/g)) out.push(Number(idx[1]));
    rest = rest.slice(m[0].length);
    if (m[0].endsWith(".") && rest.length === 0) return undefined;
  }
  return out.length ? out : undefined;
}

/** The schema that applies at a key path, if the schema describes it. */
export function schemaAt(
  path: readonly (string | number)[],
  root: Schema = CLOUD_CONFIG_SCHEMA,
): Schema | undefined {
  let s: Schema | undefined = root;
  for (const seg of path) {
    if (!s) return undefined;
    if (Array.isArray(s.anyOf)) {
      const want = typeof seg === "number" ? "array" : "object";
      s = (s.anyOf as Schema[]).find((a) => a.type === want) ?? s;
    }
    if (typeof seg === "number") s = s.items as Schema | undefined;
    else
      s = ((s.properties as Record<string, Schema> | undefined)?.[seg] ?? s.additionalProperties) as
        | Schema
        | undefined;
  }
  return s;
}

function coerce(raw: string | true, s: Schema | undefined): unknown {
  if (raw === true) return true;
  const types = new Set<unknown>([
    ...(Array.isArray(s?.type) ? (s.type as unknown[]) : [s?.type]),
    ...((s?.anyOf as Schema[] | undefined)?.map((a) => a.type) ?? []),
  ]);
  if (types.has("boolean") && (raw === "true" || raw === "false")) return raw === "true";
  if ((types.has("integer") || types.has("number")) && !types.has("string") && /^-?\d+$/.test(raw)) {
    return Number(raw);
  }
  return raw;
}

const FORBIDDEN = new Set(["__proto__", "constructor", "prototype"]);

/**
 * Read config from a kernel command line: `config_url=URL`, and dot notation for any key the
 * schema knows at the top level (`install.device=/dev/vda`, `stages.boot[0].commands[0]="echo hi"`,
 * a bare `install.auto` means true). Other kernel arguments (console=, root=, …) are not config
 * and are ignored. Values are typed by the schema (booleans, sizes). Returns undefined when the
 * command line holds no config.
 */
export function configFromCmdline(
  line: string,
  file = "/proc/cmdline",
  notes: ConfigNote[] = [],
): ParsedConfig | undefined {
  const topKeys = Object.keys(CLOUD_CONFIG_SCHEMA.properties as Record<string, unknown>);
  const value: Record<string, unknown> = {};
  const positions = new Map<string, NodePos>([["", { line: 1, col: 1 }]]);
  let any = false;
  for (const w of splitCmdline(line)) {
    const eq = w.text.indexOf("=");
    const key = eq < 0 ? w.text : w.text.slice(0, eq);
    const raw: string | true = eq < 0 ? true : w.text.slice(eq + 1);
    const first = /^[A-Za-z0-9_-]+/.exec(key)?.[0];
    if (!first || !topKeys.includes(first)) continue;
    const path = parseDotPath(key);
    if (!path) {
      throw new ConfigError(
        file,
        1,
        w.col,
        key,
        "malformed key in dot notation",
        'write it like stages.boot[0].commands[0]="echo hi"',
      );
    }
    for (const seg of path) {
      if (typeof seg === "string" && FORBIDDEN.has(seg)) {
        throw new ConfigError(file, 1, w.col, key, `refusing the key segment "${seg}"`);
      }
      if (typeof seg === "number" && seg > MAX_INDEX) {
        throw new ConfigError(file, 1, w.col, key, `list index ${seg} is too large (at most ${MAX_INDEX})`);
      }
    }
    const v = coerce(raw, schemaAt(path));
    setPath(value, path, v, file, w.col, key);
    for (let n = 1; n <= path.length; n++) {
      const k = formatKeyPath(path.slice(0, n));
      if (!positions.has(k)) positions.set(k, { line: 1, col: w.col, keyLine: 1, keyCol: w.col });
    }
    any = true;
  }
  if (!any) {
    notes.push({
      level: "note",
      file,
      line: 0,
      col: 0,
      keyPath: "",
      message: "no config keys on the kernel command line",
    });
    return undefined;
  }
  return { file, value, positions, header: "" };
}

function setPath(
  root: Record<string, unknown>,
  path: (string | number)[],
  v: unknown,
  file: string,
  col: number,
  key: string,
): void {
  let cur: unknown = root;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]!;
    const last = i === path.length - 1;
    const nextIsIndex = typeof path[i + 1] === "number";
    if (typeof seg === "number") {
      if (!Array.isArray(cur))
        throw new ConfigError(file, 1, col, key, "index used on something that is not a list");
      while (cur.length <= seg) cur.push(null);
      if (last) cur[seg] = v;
      else {
        if (cur[seg] === null || typeof cur[seg] !== "object") cur[seg] = nextIsIndex ? [] : {};
        cur = cur[seg];
      }
    } else {
      if (cur === null || typeof cur !== "object" || Array.isArray(cur)) {
        throw new ConfigError(file, 1, col, key, "key used on something that is not a map");
      }
      const m = cur as Record<string, unknown>;
      if (last) m[seg] = v;
      else {
        if (m[seg] === null || typeof m[seg] !== "object") m[seg] = nextIsIndex ? [] : {};
        cur = m[seg];
      }
    }
  }
}
