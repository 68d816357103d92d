import { isMap, isPair, isScalar, isSeq, type Node, type Tags } from "yaml";
import { ConfigError, type ConfigNote, formatKeyPath, type KeyPath } from "./errors.js";
import { canonicalizeKeyCase } from "./keycase.js";
import { cleanParserMessage, parseYamlBounded } from "./limits.js";
import { explainYamlError } from "./yamlerrors.js";

/** Headers that mark a file as a cloud-config (the last two are Kairos' legacy spellings). */
export const CONFIG_HEADERS = ["#cloud-config", "#kairos-config", "#node-config"] as const;

/**
 * Upstream's collector looks at the first 10 "lines" as Go's strings.SplitN(data, "\n", 10)
 * cuts them: lines 1-9, and everything after as the tenth.
 */
const HEADER_SEARCH_LINES = 10;

const DROPPED_TAGS = new Set([
  "tag:yaml.org,2002:timestamp",
  "tag:yaml.org,2002:binary",
  "tag:yaml.org,2002:omap",
  "tag:yaml.org,2002:pairs",
  "tag:yaml.org,2002:set",
]);

/**
 * YAML 1.1 as cloud-configs are read elsewhere (PyYAML for cloud-init, go-yaml for yip): octal
 * `0644`, `yes`/`no`/`on`/`off` booleans; but no sexagesimal numbers (`12:30` stays a string), no
 * timestamps, no single-letter y/n booleans, and no sets/ordered maps/binary that are not JSON data.
 */
function cloudConfigTags(tags: Tags): Tags {
  return tags
    .filter((t) => {
      const tag = t as { tag?: string; format?: string };
      return !DROPPED_TAGS.has(tag.tag ?? "") && tag.format !== "TIME";
    })
    .map((t) => {
      const tag = t as { tag?: string; test?: RegExp };
      if (tag.tag !== "tag:yaml.org,2002:bool" || !tag.test) return t;
      return {
        ...tag,
        test: new RegExp(tag.test.source.replace(/^\^\(\?:[YN]\|[yn]\|/, "^(?:")),
      } as typeof t;
    });
}

/** Where a key and its value sit in the source (1-based). */
export interface NodePos {
  line: number;
  col: number;
  /** Position of the key itself when the value sits under a map key. */
  keyLine?: number;
  keyCol?: number;
  /** The scalar exactly as written, for plain `permissions` numbers (see the decimal-mode warning). */
  raw?: string;
}

/** A parsed config document with a position for every key path in it. */
export interface ParsedConfig {
  /** File path, URL or "/proc/cmdline" — what error messages name. */
  file: string;
  /** The config as plain JSON data (always a map). */
  value: Record<string, unknown>;
  /** Positions keyed by formatted key path ("" is the document itself). */
  positions: Map<string, NodePos>;
  /** The header line found, e.g. "#cloud-config". */
  header: string;
}

/** The result of reading one candidate file: a config, or a note saying why it was skipped. */
export type ParseOutcome = { config: ParsedConfig } | { skipped: ConfigNote };

/**
 * Find the header as upstream's collector does: any of the first lines that, with trailing
 * white space removed, is exactly a header; whatever comes before it (comments, even YAML)
 * does not matter. Leading white space or words after the header do not count. A UTF-8 byte
 * order mark is skipped (upstream would skip such a file; see docs/cloud-config.md).
 */
export function findHeader(text: string): string | undefined {
  const body = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const lines: string[] = [];
  let from = 0;
  while (lines.length < HEADER_SEARCH_LINES - 1) {
    const nl = body.indexOf("\n", from);
    if (nl < 0) break;
    lines.push(body.slice(from, nl));
    from = nl + 1;
  }
  // The tenth piece is the rest of the text; it counts only if it is the header alone.
  lines.push(body.slice(from, from + 64 * 1024));
  for (const raw of lines) {
    if (!raw.startsWith("#")) continue;
    const line = raw.trimEnd();
    const h = CONFIG_HEADERS.find((c) => line === c);
    if (h) return h;
  }
  return undefined;
}

/**
 * Parse a cloud-config. Files without a header are skipped with a note (as upstream does);
 * YAML errors, duplicate keys and a non-map document throw ConfigError with file:line:col.
 * YAML 1.1 scalars are used, so `permissions: 0644` is the number 420.
 */
export function parseCloudConfig(
  text: string,
  file: string,
  opts: { requireHeader?: boolean } = {},
): ParseOutcome {
  const header = findHeader(text);
  if (!header && opts.requireHeader !== false) {
    return {
      skipped: {
        level: "note",
        file,
        line: 1,
        col: 1,
        keyPath: "",
        message: `skipped: no ${CONFIG_HEADERS[0]} header in the first lines (also accepted: ${CONFIG_HEADERS.slice(1).join(", ")})`,
      },
    };
  }
  return { config: parseYamlConfig(text, file, header ?? "") };
}

/** Parse YAML text (no header check) into a ParsedConfig, throwing the first error found. */
export function parseYamlConfig(text: string, file: string, header = ""): ParsedConfig {
  const { doc, lineCounter: lc } = parseYamlBounded(text, file, {
    version: "1.1",
    uniqueKeys: true,
    prettyErrors: false,
    merge: true,
    customTags: cloudConfigTags,
    keepSourceTokens: true,
  });
  const at = (offset: number) => {
    const p = lc.linePos(offset);
    return { line: p.line, col: p.col };
  };
  const first = doc.errors[0];
  if (first) throw yamlSyntaxError(text, file, first, at);
  const positions = new Map<string, NodePos>();
  const contents = doc.contents as Node | null;
  if (contents !== null && !isMap(contents)) {
    const r = contents.range ?? [0, 0, 0];
    const { line, col } = at(r[0]);
    throw new ConfigError(file, line, col, "", "expected a map of keys at the top level of a cloud-config");
  }
  // Before toJS and the position index, so both see the canonical key names.
  canonicalizeKeyCase(contents, file, at);
  let value: unknown;
  try {
    // Alias expansion was measured (and bounded) by parseYamlBounded.
    value = doc.toJS({ maxAliasCount: -1 }) ?? {};
  } catch (err) {
    throw new ConfigError(file, 1, 1, "", `invalid YAML: ${cleanParserMessage((err as Error).message)}`);
  }
  positions.set("", { line: 1, col: 1 });
  if (contents) indexPositions(contents, [], positions, at);
  return { file, value: value as Record<string, unknown>, positions, header };
}

/** A YAML syntax error as a ConfigError at the line to fix, in words a person understands. */
function yamlSyntaxError(
  text: string,
  file: string,
  e: { code: string; message: string; pos: [number, number] },
  at: (o: number) => { line: number; col: number },
): ConfigError {
  if (e.code === "DUPLICATE_KEY") {
    const { line, col } = at(e.pos[0]);
    return new ConfigError(file, line, col, "", `duplicate key ${describeKeyAt(text, e.pos[0])}`);
  }
  const x = explainYamlError(text, { code: e.code, message: e.message, offset: e.pos[0] });
  const { line, col } = at(x.offset);
  return new ConfigError(file, line, col, "", x.detail, x.hint);
}

function describeKeyAt(text: string, offset: number): string {
  const end = text.indexOf("\n", offset);
  const line = text.slice(offset, Math.min(end < 0 ? text.length : end, offset + 200));
  const colon = line.indexOf(":");
  const key = (colon < 0 ? line : line.slice(0, colon)).trim().replace(/^["']|["']$/g, "");
  return key ? JSON.stringify(key) : "in a map";
}

function indexPositions(
  node: unknown,
  path: (string | number)[],
  out: Map<string, NodePos>,
  at: (o: number) => { line: number; col: number },
): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const k = pair.key;
      const keyName = isScalar(k) ? String(k.value) : String(k);
      const sub = [...path, keyName];
      const kr = (k as Node | null)?.range;
      const v = pair.value as Node | null;
      const vr = v?.range ?? kr;
      const kp = kr ? at(kr[0]) : { line: 1, col: 1 };
      const vp = vr ? at(vr[0]) : kp;
      const pos: NodePos = { line: vp.line, col: vp.col, keyLine: kp.line, keyCol: kp.col };
      if (keyName === "permissions" && isScalar(v) && typeof v.value === "number") {
        const tok = v.srcToken as { source?: string } | undefined;
        if (typeof tok?.source === "string") pos.raw = tok.source;
      }
      out.set(formatKeyPath(sub), pos);
      if (v) indexPositions(v, sub, out, at);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      const sub = [...path, i];
      const r = (item as Node | null)?.range;
      if (r) out.set(formatKeyPath(sub), at(r[0]));
      indexPositions(item, sub, out, at);
    });
  }
}

/**
 * Position of a key path: the exact node if known, else the closest enclosing one.
 * `key: true` prefers the key's own position over its value's.
 */
export function locate(cfg: ParsedConfig, path: KeyPath, key = false): { line: number; col: number } {
  for (let n = path.length; n >= 0; n--) {
    const p = cfg.positions.get(formatKeyPath(path.slice(0, n)));
    if (p) {
      if (key && n === path.length && p.keyLine !== undefined) return { line: p.keyLine, col: p.keyCol! };
      return { line: p.line, col: p.col };
    }
  }
  return { line: 1, col: 1 };
}
