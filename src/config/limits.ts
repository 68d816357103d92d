import {
  Composer,
  CST,
  type Document,
  isAlias,
  isMap,
  isPair,
  isSeq,
  Lexer,
  LineCounter,
  type Node,
  type ParseOptions,
  Parser,
  YAMLParseError,
  type DocumentOptions as YamlDocumentOptions,
  type SchemaOptions as YamlSchemaOptions,
} from "yaml";
import { ConfigError } from "./errors.js";

/**
 * Limits on what one config document may make the parser do. Every config source (files, a
 * config_url body, stdin) goes through them before anything expensive happens, so one bad file
 * can neither exhaust the stack or the heap nor stall the agent at boot. Real configs are far
 * below each of them: Kairos' own examples nest fewer than 12 levels and hold a few hundred values.
 */
export const YAML_LIMITS = {
  /** Bytes in one document (the same bound as for files and config_url bodies). */
  documentBytes: 4 * 1024 * 1024,
  /** Characters in one scalar value. */
  scalarBytes: 1024 * 1024,
  /** Lists and maps inside each other, after aliases are expanded. */
  depth: 256,
  /** Values (scalars, lists, maps, aliases) as written. */
  nodes: 100_000,
  /** Values after every alias is expanded (stops "billion laughs"). */
  expandedNodes: 100_000,
} as const;

export type YamlLimits = { readonly [K in keyof typeof YAML_LIMITS]: number };

const COLLECTIONS = new Set(["block-map", "block-seq", "flow-collection"]);

function mib(n: number): string {
  return n % (1024 * 1024) === 0 ? `${n / (1024 * 1024)} MiB` : `${n} bytes`;
}

/** Words for raw JavaScript engine errors that must never be shown as they are. */
const ENGINE_ERROR =
  /call stack|allocation failed|out of memory|is not a function|cannot read prop|undefined|\[object /i;

/** A parser message fit for a person, or a generic one if it is engine text. */
export function cleanParserMessage(message: string): string {
  const first = message.split("\n")[0] ?? "";
  if (!first || ENGINE_ERROR.test(first)) return "this YAML could not be read";
  return first;
}

export interface BoundedYaml {
  doc: Document.Parsed;
  lineCounter: LineCounter;
}

type Options = ParseOptions & YamlDocumentOptions & YamlSchemaOptions;

/**
 * Lex and parse `text` into a YAML document the way `yaml.parseDocument` does, but refuse, with
 * file:line:col, anything past YAML_LIMITS *before* the recursive composer or `toJS` sees it:
 * the CST parser is iterative, so nesting depth, scalar sizes and value counts are checked on
 * its stack as tokens arrive; alias expansion (size and depth) is measured on the composed
 * document before any value is built. Only the first document is returned (a second one is an
 * error, as in parseDocument).
 */
export function parseYamlBounded(
  text: string,
  file: string,
  options: Options,
  limits: YamlLimits = YAML_LIMITS,
): BoundedYaml {
  const lc = new LineCounter();
  const at = (offset: number) => lc.linePos(Math.max(0, Math.min(offset, text.length)));
  const refuse = (offset: number, detail: string, hint: string): never => {
    const p = at(offset);
    throw new ConfigError(file, p.line, p.col, "", detail, hint);
  };
  if (text.length > limits.documentBytes) {
    // Count lines only up to the limit: the message names where the limit was crossed.
    for (let i = text.indexOf("\n"); i >= 0 && i < limits.documentBytes; i = text.indexOf("\n", i + 1))
      lc.addNewLine(i + 1);
    lc.addNewLine(0);
    refuse(
      limits.documentBytes,
      `the document is larger than ${mib(limits.documentBytes)}`,
      "split it into several files or fetch large content at run time",
    );
  }
  const parser = new Parser(lc.addNewLine);
  const tokens: CST.Token[] = [];
  let nodes = 0;
  lc.addNewLine(0);
  try {
    for (const lexeme of new Lexer().lex(text)) {
      const offset = parser.offset;
      if (lexeme.length > limits.scalarBytes) {
        refuse(
          offset,
          `a value is longer than ${mib(limits.scalarBytes)}`,
          "ship large content as a file and fetch it with `downloads`",
        );
      }
      const type = CST.tokenType(lexeme);
      if (
        type === "scalar" ||
        type === "alias" ||
        type === "single-quoted-scalar" ||
        type === "double-quoted-scalar" ||
        type === "flow-seq-start" ||
        type === "flow-map-start" ||
        type === "seq-item-ind"
      ) {
        if (++nodes > limits.nodes) {
          refuse(
            offset,
            `more than ${limits.nodes} values in one document`,
            "split the config into several files",
          );
        }
      }
      for (const t of parser.next(lexeme)) tokens.push(t);
      let depth = 0;
      let deepest = offset;
      for (const t of parser.stack) {
        if (!COLLECTIONS.has(t.type)) continue;
        depth++;
        deepest = t.offset;
      }
      if (depth > limits.depth) {
        refuse(
          deepest,
          `nested deeper than ${limits.depth} levels (lists and maps inside each other)`,
          "a cloud-config needs a few levels; look for a run of [ or { or a runaway indentation here",
        );
      }
    }
    for (const t of parser.end()) tokens.push(t);
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    refuse(parser.offset, cleanParserMessage((err as Error).message), "fix the YAML syntax at that position");
  }
  let doc: Document.Parsed | undefined;
  let extra: Document.Parsed | undefined;
  try {
    const composer = new Composer(options);
    for (const d of composer.compose(tokens, true, text.length)) {
      if (!doc) doc = d;
      else {
        extra = d;
        break;
      }
    }
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    refuse(0, cleanParserMessage((err as Error).message), "fix the YAML syntax");
  }
  if (!doc) refuse(0, "this YAML could not be read", "fix the YAML syntax");
  const parsed = doc as Document.Parsed;
  if (extra) {
    parsed.errors.push(
      new YAMLParseError(
        [extra.range[0], extra.range[1]],
        "MULTIPLE_DOCS",
        "a cloud-config is one YAML document; this file starts a second one (---)",
      ),
    );
  }
  if (parsed.errors.length === 0) checkAliases(parsed, limits, refuse);
  return { doc: parsed, lineCounter: lc };
}

interface Extent {
  size: number;
  depth: number;
}

/**
 * Measure what the document would become with every alias expanded (values and depth), without
 * building it; an alias that would make it too large or too deep, or that points into the node
 * holding it, is refused at its own position.
 */
function checkAliases(
  doc: Document.Parsed,
  limits: YamlLimits,
  refuse: (offset: number, detail: string, hint: string) => never,
): void {
  const done = new Map<Node, Extent>();
  const open = new Set<Node>();
  const anchors = new Map<string, Node>();
  const offsetOf = (n: Node) => (n.range ? n.range[0] : 0);
  const measure = (node: unknown, level: number): Extent => {
    if (node === null || node === undefined || typeof node !== "object") return { size: 1, depth: 0 };
    const n = node as Node;
    const known = done.get(n);
    if (known) return known;
    if (isAlias(n)) {
      const target = anchors.get(n.source);
      if (!target) {
        refuse(
          offsetOf(n),
          `alias *${n.source} has no anchor &${n.source} before it`,
          "define the anchor first",
        );
      }
      const t = target as Node;
      if (open.has(t)) {
        refuse(
          offsetOf(n),
          `alias *${n.source} points into the value that contains it`,
          "an alias can only repeat a value defined before it",
        );
      }
      return done.get(t) ?? measure(t, level);
    }
    if (n.anchor) anchors.set(n.anchor, n);
    if (!isMap(n) && !isSeq(n)) return { size: 1, depth: 0 };
    open.add(n);
    let size = 1;
    let depth = 0;
    let biggest: { node: Node | null; size: number; depth: number } = { node: null, size: 0, depth: 0 };
    const visitChild = (child: unknown) => {
      const e = measure(child, level + 1);
      size += e.size;
      depth = Math.max(depth, e.depth + 1);
      if (isAlias(child) && (e.size > biggest.size || e.depth > biggest.depth)) {
        biggest = { node: child as Node, size: e.size, depth: e.depth };
      }
    };
    for (const item of n.items) {
      if (isPair(item)) {
        visitChild(item.key);
        visitChild(item.value);
      } else visitChild(item);
    }
    open.delete(n);
    const where = biggest.node ? offsetOf(biggest.node) : offsetOf(n);
    if (size > limits.expandedNodes) {
      refuse(
        where,
        `aliases expand to more than ${limits.expandedNodes} values`,
        "repeat less: each *alias copies the whole value of its &anchor",
      );
    }
    if (level + depth > limits.depth) {
      refuse(
        where,
        `nested deeper than ${limits.depth} levels once aliases are expanded`,
        "an alias inside the value of another anchor nests it once more",
      );
    }
    const e = { size, depth };
    done.set(n, e);
    return e;
  };
  measure(doc.contents, 0);
}
