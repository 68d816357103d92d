import { cleanParserMessage } from "./limits.js";

/** A YAML syntax error as the parser reports it. */
export interface RawYamlError {
  code: string;
  message: string;
  /** Offset into the text where the parser noticed the problem. */
  offset: number;
}

/** Where to point and what to say, in a person's words. */
export interface ExplainedYamlError {
  offset: number;
  detail: string;
  hint: string;
}

interface Line {
  /** Offset of the line's first character. */
  start: number;
  text: string;
  /** Spaces before the first character (tabs stop the count). */
  indent: number;
  /** 0-based column of the first key after any `- ` list markers, or -1. */
  keyCol: number;
  /** That key, if the line is `KEY: …` or `KEY:` (after list markers). */
  key?: string;
}

const MAX_LINE = 4096;

function lineAt(text: string, start: number): Line {
  let end = text.indexOf("\n", start);
  if (end < 0) end = text.length;
  const raw = text.slice(start, Math.min(end, start + MAX_LINE)).replace(/\r$/, "");
  let indent = 0;
  while (indent < raw.length && raw[indent] === " ") indent++;
  let col = indent;
  while (raw.startsWith("- ", col)) {
    col += 2;
    while (raw[col] === " ") col++;
  }
  const rest = raw.slice(col);
  const m = /^([^\s#:"'[\]{},][^:]*?|"[^"]*"|'[^']*'):(?:\s|$)/.exec(rest);
  return {
    start,
    text: raw,
    indent,
    keyCol: m ? col : -1,
    ...(m ? { key: m[1]!.replace(/^["']|["']$/g, "") } : {}),
  };
}

function lineStartOf(text: string, offset: number): number {
  return text.lastIndexOf("\n", Math.max(0, offset - 1)) + 1;
}

function isContent(l: Line): boolean {
  const t = l.text.trim();
  return t !== "" && !t.startsWith("#");
}

/** The nearest line before the one starting at `start` that holds YAML content. */
function previousContent(text: string, start: number): Line | undefined {
  let s = start;
  for (let i = 0; i < 200 && s > 0; i++) {
    s = lineStartOf(text, s - 1);
    const l = lineAt(text, s);
    if (isContent(l)) return l;
  }
  return undefined;
}

/** The nearest line after the one starting at `start` that holds YAML content. */
function nextContent(text: string, start: number): Line | undefined {
  let s = start;
  for (let i = 0; i < 200; i++) {
    const nl = text.indexOf("\n", s);
    if (nl < 0) return undefined;
    s = nl + 1;
    const l = lineAt(text, s);
    if (isContent(l)) return l;
  }
  return undefined;
}

/** The last `open` before `offset` without its `close` (quotes are not considered: a hint only). */
function unclosedBracket(text: string, offset: number, open: string, close: string): number | undefined {
  let depth = 0;
  for (let i = Math.min(offset, text.length) - 1; i >= 0 && i > offset - 65536; i--) {
    const c = text[i];
    if (c === close) depth++;
    else if (c === open) {
      if (depth === 0) return i;
      depth--;
    }
  }
  return undefined;
}

const q = (k: string) => `\`${k.length > 40 ? `${k.slice(0, 37)}...` : k}\``;
const SAME_COLUMN = "keys of one map must start in the same column";

/**
 * Explain the common indentation mistakes at the line a person has to fix. The YAML parser
 * notices an over-indented key on the line *above* it (it reads `kairos\n   passwd` as one
 * multi-line key), and an under-indented one as a "sequence item without -"; Go's and Python's
 * parsers name the indented line, and so do we.
 */
export function explainYamlError(text: string, e: RawYamlError): ExplainedYamlError {
  const start = lineStartOf(text, e.offset);
  const here = lineAt(text, start);
  const fallback: ExplainedYamlError = {
    offset: e.offset,
    detail: `invalid YAML: ${cleanParserMessage(e.message)}`,
    hint: "fix the YAML syntax at that position",
  };
  switch (e.code) {
    case "BLOCK_AS_IMPLICIT_KEY":
    case "MULTILINE_IMPLICIT_KEY": {
      const next = nextContent(text, start);
      if (here.key !== undefined && next && next.key !== undefined && next.indent > here.keyCol) {
        return {
          offset: next.start + next.indent,
          detail: `${q(next.key)} is indented more than ${q(here.key)} above it (column ${next.indent + 1}, ${q(here.key)} is at column ${here.keyCol + 1}); ${SAME_COLUMN}`,
          hint: `move ${q(next.key)} to column ${here.keyCol + 1}, or indent it under a key that ends with ":"`,
        };
      }
      const glued = /^\s*(?:- +)*([\w.-]+):(\S.*)$/.exec(here.text);
      if (glued && here.key === undefined) {
        return {
          offset: here.start + here.text.indexOf(glued[1]!),
          detail: `\`${glued[1]}:${glued[2]!.slice(0, 20)}\` needs a space after the colon to be a key and its value`,
          hint: `write \`${glued[1]}: ${glued[2]!.slice(0, 20)}\``,
        };
      }
      if (e.code === "BLOCK_AS_IMPLICIT_KEY") {
        return {
          offset: e.offset,
          detail: 'a value with ": " in it reads as another key here',
          hint: "put the value in quotes",
        };
      }
      return fallback;
    }
    case "MISSING_CHAR": {
      if (!/without - indicator/.test(e.message)) return fallback;
      const prev = previousContent(text, start);
      if (prev?.key !== undefined && here.indent < prev.keyCol && here.indent > prev.indent) {
        const name = here.key ?? here.text.trim().slice(0, 20);
        return {
          offset: here.start + here.indent,
          detail: `${q(name)} is indented less than ${q(prev.key)} above it (column ${here.indent + 1}, ${q(prev.key)} is at column ${prev.keyCol + 1}); ${SAME_COLUMN}`,
          hint: `move it to column ${prev.keyCol + 1}, or start a new list item with "- "`,
        };
      }
      return {
        ...fallback,
        offset: here.start + here.indent,
        detail: "this line is not a list item (no `- `) but sits inside a list",
      };
    }
    case "BAD_INDENT": {
      if (/same column/.test(e.message)) {
        const prev = previousContent(text, start);
        const name = here.key ?? here.text.trim().slice(0, 20);
        const other =
          prev?.key !== undefined ? ` but ${q(prev.key)} above it starts at column ${prev.keyCol + 1}` : "";
        return {
          offset: here.start + here.indent,
          detail: `${q(name)} starts at column ${here.indent + 1}${other}; ${SAME_COLUMN}`,
          hint: 'line the keys of the map up, or indent this one under a key that ends with ":"',
        };
      }
      if (/Flow (sequence|mapping)/.test(e.message)) {
        const seq = /sequence/.test(e.message);
        const open = unclosedBracket(text, e.offset, seq ? "[" : "{", seq ? "]" : "}");
        return {
          offset: open ?? e.offset,
          detail: `this ${seq ? "[" : "{"} is not closed with ${seq ? "]" : "}"} before the next key`,
          hint: "close it, or indent its continuation lines more than the key it belongs to",
        };
      }
      return fallback;
    }
    case "TAB_AS_INDENT":
      return {
        offset: e.offset,
        detail: "a tab is used for indentation; YAML indents with spaces only",
        hint: "replace the tab with spaces",
      };
    default:
      return fallback;
  }
}
