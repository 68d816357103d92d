import { createHash, randomBytes, randomUUID } from "node:crypto";

/**
 * Go templates (text/template) with the sprig functions Kairos configs use, as yip renders them:
 * actions `{{ … }}` with `{{-`/`-}}` trimming, pipelines (`.MachineID | trunc 8 | upper`),
 * field chains (`.Values.node.hostname`), string, number and boolean literals, parenthesized
 * sub-pipelines, comments, and `if`/`else if`/`else`/`end`. `range`, `with`, `define`,
 * `template`, `block` and variables (`$x :=`) are refused by name. A function we do not have is
 * an error when the template is parsed, so the validator reports it before anything runs.
 *
 * The lexer and parser are linear in the text (no regular expression over user input), and the
 * output is capped, so a hostile template cannot stall the agent.
 */

export type TemplateData = Record<string, unknown>;

/** Where in the template text a problem is (0-based offset) and what it is. */
export class TemplateError extends Error {
  override readonly name = "TemplateError";
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

type Operand =
  | { kind: "field"; path: string[]; offset: number }
  | { kind: "dot"; offset: number }
  | { kind: "string"; value: string; offset: number }
  | { kind: "number"; value: number; offset: number }
  | { kind: "bool"; value: boolean; offset: number }
  | { kind: "nil"; offset: number }
  | { kind: "func"; name: string; offset: number }
  | { kind: "pipe"; pipe: Pipeline; path: string[]; offset: number };

type Command = Operand[];
type Pipeline = Command[];

type TNode =
  | { kind: "text"; value: string }
  | { kind: "action"; pipe: Pipeline; offset: number }
  | { kind: "if"; branches: { cond: Pipeline; body: TNode[] }[]; otherwise: TNode[] };

const MAX_OUTPUT = 1024 * 1024;
const MAX_TEMPLATE = 1024 * 1024;

const str = (v: unknown): string => {
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
};
const int = (v: unknown, fn: string): number => {
  const n = typeof v === "number" ? v : Number(str(v));
  if (!Number.isFinite(n)) throw new Error(`${fn}: ${JSON.stringify(str(v))} is not a number`);
  return Math.trunc(n);
};
const truthy = (v: unknown): boolean =>
  !(
    v === undefined ||
    v === null ||
    v === false ||
    v === 0 ||
    v === "" ||
    (Array.isArray(v) && v.length === 0) ||
    (typeof v === "object" && v !== null && Object.keys(v).length === 0)
  );
const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const rand = (n: unknown, alphabet: string, fn: string): string => {
  const k = Math.min(int(n, fn), 4096);
  const bytes = randomBytes(Math.max(0, k));
  let out = "";
  for (const b of bytes) out += alphabet[b % alphabet.length];
  return out;
};
const repeatCapped = (n: number, s: string) =>
  s.repeat(Math.max(0, Math.min(n, Math.floor(MAX_OUTPUT / Math.max(1, s.length)))));

/** sprig's functions (and text/template's builtins) that Kairos configs use. Arguments are in Go order. */
const FUNCS: Record<string, (...a: unknown[]) => unknown> = {
  // text/template builtins
  and: (...a) => a.find((x) => !truthy(x)) ?? a[a.length - 1],
  or: (...a) => a.find(truthy) ?? a[a.length - 1],
  not: (a) => !truthy(a),
  eq: (a, ...b) => b.some((x) => str(x) === str(a) && typeof x === typeof a),
  ne: (a, b) => !(str(a) === str(b) && typeof a === typeof b),
  lt: (a, b) => (typeof a === "number" ? a < int(b, "lt") : str(a) < str(b)),
  le: (a, b) => (typeof a === "number" ? a <= int(b, "le") : str(a) <= str(b)),
  gt: (a, b) => (typeof a === "number" ? a > int(b, "gt") : str(a) > str(b)),
  ge: (a, b) => (typeof a === "number" ? a >= int(b, "ge") : str(a) >= str(b)),
  len: (a) =>
    Array.isArray(a) ? a.length : typeof a === "object" && a ? Object.keys(a).length : str(a).length,
  index: (a, ...keys) => {
    let cur = a;
    for (const k of keys)
      cur = cur && typeof cur === "object" ? (cur as Record<string, unknown>)[str(k)] : undefined;
    return cur;
  },
  print: (...a) => a.map(str).join(""),
  println: (...a) => `${a.map(str).join(" ")}\n`,
  printf: (f, ...a) => {
    let i = 0;
    return str(f).replace(/%[-+# 0]*\d*(?:\.\d+)?[svdqxXft%]/g, (m) => {
      if (m === "%%") return "%";
      const v = a[i++];
      const c = m[m.length - 1];
      if (c === "q") return JSON.stringify(str(v));
      if (c === "d") return String(int(v, "printf"));
      if (c === "x") return int(v, "printf").toString(16);
      if (c === "X") return int(v, "printf").toString(16).toUpperCase();
      return str(v);
    });
  },
  // sprig strings
  trunc: (n, s) => {
    const k = int(n, "trunc");
    const t = str(s);
    return k >= 0 ? t.slice(0, k) : t.slice(k);
  },
  upper: (s) => str(s).toUpperCase(),
  lower: (s) => str(s).toLowerCase(),
  title: (s) => str(s).replace(/\b[a-z]/g, (c) => c.toUpperCase()),
  trim: (s) => str(s).trim(),
  trimAll: (c, s) => {
    const set = str(c);
    let t = str(s);
    while (t && set.includes(t[0]!)) t = t.slice(1);
    while (t && set.includes(t[t.length - 1]!)) t = t.slice(0, -1);
    return t;
  },
  trimPrefix: (p, s) => (str(s).startsWith(str(p)) ? str(s).slice(str(p).length) : str(s)),
  trimSuffix: (p, s) => (str(s).endsWith(str(p)) && str(p) ? str(s).slice(0, -str(p).length) : str(s)),
  replace: (a, b, s) => str(s).split(str(a)).join(str(b)),
  repeat: (n, s) => repeatCapped(int(n, "repeat"), str(s)),
  substr: (a, b, s) => str(s).slice(int(a, "substr"), int(b, "substr")),
  nospace: (s) => str(s).replace(/\s+/g, ""),
  contains: (a, s) => str(s).includes(str(a)),
  hasPrefix: (a, s) => str(s).startsWith(str(a)),
  hasSuffix: (a, s) => str(s).endsWith(str(a)),
  quote: (...a) => a.map((x) => JSON.stringify(str(x))).join(" "),
  squote: (...a) => a.map((x) => `'${str(x)}'`).join(" "),
  cat: (...a) =>
    a
      .filter((x) => x !== undefined && x !== null)
      .map(str)
      .join(" "),
  indent: (n, s) => str(s).replace(/^/gm, " ".repeat(Math.min(int(n, "indent"), 256))),
  nindent: (n, s) => `\n${str(s).replace(/^/gm, " ".repeat(Math.min(int(n, "nindent"), 256)))}`,
  split: (sep, s) =>
    Object.fromEntries(
      str(s)
        .split(str(sep))
        .map((p, i) => [`_${i}`, p]),
    ),
  splitList: (sep, s) => str(s).split(str(sep)),
  join: (sep, l) => (Array.isArray(l) ? l.map(str).join(str(sep)) : str(l)),
  toString: (v: unknown) => str(v),
  default: (d, v) => (truthy(v) ? v : d),
  empty: (v) => !truthy(v),
  coalesce: (...a) => a.find(truthy),
  ternary: (a, b, c) => (truthy(c) ? a : b),
  list: (...a) => a,
  dict: (...a) => {
    const out: Record<string, unknown> = {};
    for (let i = 0; i + 1 < a.length; i += 2) out[str(a[i])] = a[i + 1];
    return out;
  },
  // encodings and hashes
  b64enc: (s) => Buffer.from(str(s)).toString("base64"),
  b64dec: (s) => Buffer.from(str(s), "base64").toString("utf8"),
  sha256sum: (s) => createHash("sha256").update(str(s)).digest("hex"),
  sha1sum: (s) => createHash("sha1").update(str(s)).digest("hex"),
  toJson: (v) => JSON.stringify(v ?? null),
  // numbers
  atoi: (s) => int(s, "atoi"),
  int: (s) => int(s, "int"),
  add: (...a) => a.reduce((x: number, y) => x + int(y, "add"), 0),
  sub: (a, b) => int(a, "sub") - int(b, "sub"),
  mul: (...a) => a.reduce((x: number, y) => x * int(y, "mul"), 1),
  div: (a, b) => Math.trunc(int(a, "div") / (int(b, "div") || Number.NaN)),
  mod: (a, b) => int(a, "mod") % int(b, "mod"),
  // randomness and the environment
  uuidv4: () => randomUUID(),
  randAlphaNum: (n) => rand(n, ALNUM, "randAlphaNum"),
  randAlpha: (n) => rand(n, ALNUM.slice(0, 52), "randAlpha"),
  randNumeric: (n) => rand(n, "0123456789", "randNumeric"),
  env: (k) => process.env[str(k)] ?? "",
};

/** The functions a template may call (for help and error messages). */
export const TEMPLATE_FUNCTIONS: readonly string[] = Object.keys(FUNCS).sort();

const REFUSED = new Set(["range", "with", "define", "template", "block", "break", "continue"]);

/** Action delimiters: `{{ }}`, or AuroraBoot's `[[ ]]` for the cloud-config it is given. */
export type Delims = readonly [open: string, close: string];
const GO_DELIMS: Delims = ["{{", "}}"];

/** Split `text` into text and actions; every opening delimiter must have its closing one. */
function lex(
  text: string,
  [openD, closeD]: Delims = GO_DELIMS,
): ({ kind: "text"; value: string } | { kind: "action"; body: string; offset: number })[] {
  if (text.length > MAX_TEMPLATE) throw new TemplateError("template longer than 1 MiB", 0);
  const out: ({ kind: "text"; value: string } | { kind: "action"; body: string; offset: number })[] = [];
  let i = 0;
  let trimNext = false;
  while (i < text.length) {
    const open = text.indexOf(openD, i);
    let chunk = open < 0 ? text.slice(i) : text.slice(i, open);
    if (trimNext) chunk = chunk.trimStart();
    trimNext = false;
    if (open < 0) {
      if (chunk) out.push({ kind: "text", value: chunk });
      break;
    }
    let start = open + openD.length;
    if (text[start] === "-" && /\s/.test(text[start + 1] ?? "")) {
      chunk = chunk.trimEnd();
      start++;
    }
    if (chunk) out.push({ kind: "text", value: chunk });
    // Find the closing braces outside string literals.
    let j = start;
    let quote = "";
    for (; j < text.length; j++) {
      const c = text[j]!;
      if (quote) {
        if (c === "\\" && quote === '"') j++;
        else if (c === quote) quote = "";
      } else if (c === '"' || c === "`") quote = c;
      else if (text.startsWith(closeD, j)) break;
    }
    if (j >= text.length) throw new TemplateError(`unclosed action: "${openD}" without "${closeD}"`, open);
    let end = j;
    if (text[end - 1] === "-" && /\s/.test(text[end - 2] ?? "")) {
      trimNext = true;
      end--;
    }
    out.push({ kind: "action", body: text.slice(start, end), offset: start });
    i = j + closeD.length;
  }
  return out;
}

/** Parse one action body into a pipeline of commands. */
function parsePipeline(body: string, base: number): Pipeline {
  let i = 0;
  const ws = () => {
    while (i < body.length && /\s/.test(body[i]!)) i++;
  };
  const pipeline = (closing?: string): Pipeline => {
    const cmds: Pipeline = [];
    let cmd: Command = [];
    for (;;) {
      ws();
      if (i >= body.length || (closing && body[i] === closing)) break;
      const at = base + i;
      const c = body[i]!;
      if (c === "|") {
        if (!cmd.length) throw new TemplateError("missing command before |", at);
        cmds.push(cmd);
        cmd = [];
        i++;
        continue;
      }
      if (c === "(") {
        i++;
        const inner = pipeline(")");
        if (body[i] !== ")") throw new TemplateError('unclosed "("', at);
        i++;
        // `(index .Config.users 0).name`: fields of the parenthesized value
        let j = i;
        while (j < body.length && !/[\s|()]/.test(body[j]!)) j++;
        const chain = body.slice(i, j);
        if (chain && !/^(\.[A-Za-z_][A-Za-z0-9_]*)+$/.test(chain))
          throw new TemplateError(`bad field name ${chain.slice(0, 20)}`, base + i);
        i = j;
        cmd.push({ kind: "pipe", pipe: inner, path: chain ? chain.slice(1).split(".") : [], offset: at });
        continue;
      }
      if (c === '"' || c === "`") {
        let j = i + 1;
        let v = "";
        for (; j < body.length && body[j] !== c; j++) {
          if (c === '"' && body[j] === "\\") {
            const n = body[++j];
            v += n === "n" ? "\n" : n === "t" ? "\t" : (n ?? "");
          } else v += body[j];
        }
        if (j >= body.length) throw new TemplateError("unclosed string", at);
        i = j + 1;
        cmd.push({ kind: "string", value: v, offset: at });
        continue;
      }
      let j = i;
      while (j < body.length && !/[\s|()]/.test(body[j]!)) j++;
      const word = body.slice(i, j);
      i = j;
      if (word === ".") cmd.push({ kind: "dot", offset: at });
      else if (word.startsWith(".")) {
        const path = word.slice(1).split(".");
        if (path.some((p) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(p)))
          throw new TemplateError(`bad field name ${word}`, at);
        cmd.push({ kind: "field", path, offset: at });
      } else if (/^-?\d+(\.\d+)?$/.test(word)) cmd.push({ kind: "number", value: Number(word), offset: at });
      else if (word === "true" || word === "false")
        cmd.push({ kind: "bool", value: word === "true", offset: at });
      else if (word === "nil") cmd.push({ kind: "nil", offset: at });
      else if (word.startsWith("$"))
        throw new TemplateError(`template variables (${word}) are not supported`, at);
      else if (REFUSED.has(word))
        throw new TemplateError(`"${word}" is not supported in kairos-ts templates`, at);
      else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(word)) {
        if (!Object.hasOwn(FUNCS, word)) {
          throw new TemplateError(`unknown template function ${word}`, at);
        }
        cmd.push({ kind: "func", name: word, offset: at });
      } else throw new TemplateError(`unexpected ${JSON.stringify(word.slice(0, 20))} in action`, at);
    }
    if (cmd.length) cmds.push(cmd);
    else if (cmds.length) throw new TemplateError("missing command after |", base + i);
    return cmds;
  };
  const p = pipeline();
  if (i < body.length) throw new TemplateError(`unexpected ${JSON.stringify(body[i])}`, base + i);
  return p;
}

/** Parse a template; syntax errors and unknown functions throw TemplateError with an offset. */
export function parseTemplate(text: string, delims: Delims = GO_DELIMS): TNode[] {
  const root: TNode[] = [];
  const stack: { node: Extract<TNode, { kind: "if" }>; body: TNode[]; offset: number }[] = [];
  const target = () => stack[stack.length - 1]?.body ?? root;
  for (const tok of lex(text, delims)) {
    if (tok.kind === "text") {
      target().push(tok);
      continue;
    }
    const body = tok.body.trim();
    const lead = tok.body.length - tok.body.trimStart().length;
    const at = tok.offset + lead;
    if (body.startsWith("/*")) {
      if (!body.endsWith("*/")) throw new TemplateError("unclosed comment", at);
      continue;
    }
    const word = /^[a-z]+/.exec(body)?.[0] ?? "";
    if (word === "if") {
      const node: Extract<TNode, { kind: "if" }> = {
        kind: "if",
        branches: [{ cond: parsePipeline(body.slice(2), at + 2), body: [] }],
        otherwise: [],
      };
      target().push(node);
      stack.push({ node, body: node.branches[0]!.body, offset: at });
    } else if (word === "else") {
      const top = stack[stack.length - 1];
      if (!top) throw new TemplateError('"else" without "if"', at);
      const rest = body.slice(4).trim();
      if (rest.startsWith("if ")) {
        const b = { cond: parsePipeline(rest.slice(3), at + body.indexOf("if ") + 3), body: [] as TNode[] };
        top.node.branches.push(b);
        top.body = b.body;
      } else if (rest === "") top.body = top.node.otherwise;
      else throw new TemplateError(`unexpected ${JSON.stringify(rest.slice(0, 20))} after else`, at);
    } else if (word === "end" && body === "end") {
      if (!stack.pop()) throw new TemplateError('"end" without "if"', at);
    } else {
      if (!body) throw new TemplateError("empty action", at);
      target().push({ kind: "action", pipe: parsePipeline(tok.body, tok.offset), offset: at });
    }
  }
  const open = stack.pop();
  if (open) throw new TemplateError('"if" without "end"', open.offset);
  return root;
}

function evalOperand(op: Operand, data: TemplateData, dot: unknown): unknown {
  switch (op.kind) {
    case "dot":
      return dot;
    case "string":
    case "number":
    case "bool":
      return op.value;
    case "nil":
      return undefined;
    case "pipe":
      return op.path.reduce<unknown>(
        (cur, k) =>
          cur && typeof cur === "object" && Object.hasOwn(cur, k)
            ? (cur as Record<string, unknown>)[k]
            : undefined,
        evalPipeline(op.pipe, data, dot),
      );
    case "func":
      return FUNCS[op.name]!();
    case "field": {
      const [first, ...rest] = op.path;
      if (!Object.hasOwn(data, first!)) {
        throw new TemplateError(
          `unknown template value .${first} (known: ${Object.keys(data)
            .map((k) => `.${k}`)
            .join(", ")})`,
          op.offset,
        );
      }
      let cur: unknown = data[first!];
      for (const k of rest) {
        // Go gives "<no value>" for a missing map key; we give an empty string.
        cur =
          cur && typeof cur === "object" && Object.hasOwn(cur, k)
            ? (cur as Record<string, unknown>)[k]
            : undefined;
      }
      return cur;
    }
  }
}

function evalCommand(cmd: Command, data: TemplateData, dot: unknown, piped: unknown[]): unknown {
  const [head, ...rest] = cmd;
  if (!head) throw new TemplateError("empty command", 0);
  if (head.kind !== "func") {
    if (rest.length || piped.length)
      throw new TemplateError("only a function can take arguments", head.offset);
    return evalOperand(head, data, dot);
  }
  const args = [...rest.map((o) => evalOperand(o, data, dot)), ...piped];
  try {
    return FUNCS[head.name]!(...args);
  } catch (err) {
    throw new TemplateError(`${head.name}: ${(err as Error).message}`, head.offset);
  }
}

function evalPipeline(p: Pipeline, data: TemplateData, dot: unknown): unknown {
  let value: unknown;
  p.forEach((cmd, i) => {
    value = evalCommand(cmd, data, dot, i === 0 ? [] : [value]);
  });
  return value;
}

function execute(nodes: TNode[], data: TemplateData, out: string[], size: { n: number }): void {
  for (const n of nodes) {
    if (n.kind === "text") out.push(n.value);
    else if (n.kind === "action") out.push(str(evalPipeline(n.pipe, data, data)));
    else {
      const b = n.branches.find((br) => truthy(evalPipeline(br.cond, data, data)));
      execute(b ? b.body : n.otherwise, data, out, size);
    }
    size.n += out[out.length - 1]?.length ?? 0;
    if (size.n > MAX_OUTPUT) throw new TemplateError("template output larger than 1 MiB", 0);
  }
}

/** Render `text` with `data` (its keys are the top-level `.Names`). */
export function renderTemplate(text: string, data: TemplateData, delims: Delims = GO_DELIMS): string {
  if (!text.includes(delims[0])) return text;
  const out: string[] = [];
  execute(parseTemplate(text, delims), data, out, { n: 0 });
  return out.join("");
}

/** yip's `.Random` for hostnames: 32 characters of [0-9a-z], new at every render. */
export function randomString(n = 32): string {
  return rand(n, "1234567890abcdefghijklmnopqrstuvwxyz", "Random");
}
