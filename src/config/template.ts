import { createHash, randomBytes, randomUUID } from "node:crypto";

/**
 * Go templates (text/template) with the sprig functions Kairos configs use, as yip renders them:
 * actions `{{ … }}` with `{{-`/`-}}` trimming, pipelines (`.MachineID | trunc 8 | upper`),
 * field chains (`.Values.node.hostname`), string, number and boolean literals, parenthesized
 * sub-pipelines (also as arguments: `printf "%s" (upper .Random)`), comments, variables
 * (`$x := …`, `$x = …`, `$`, `$x.field`), `if`/`else if`/`else`, `with`/`else with`,
 * `range` (lists, maps in key order, integers; `$i, $e :=`; `break`, `continue`, `else`),
 * `define`/`template`/`block`. A function we do not have, an undefined variable or template
 * is an error when the template is parsed, so the validator reports it before anything runs.
 *
 * The lexer and parser are linear in the text (no regular expression over user input), and the
 * output, the steps run and the template call depth are capped, so a hostile template cannot
 * stall the agent.
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
  | { kind: "var"; name: string; path: string[]; offset: number }
  | { kind: "dot"; offset: number }
  | { kind: "string"; value: string; offset: number }
  | { kind: "number"; value: number; offset: number }
  | { kind: "bool"; value: boolean; offset: number }
  | { kind: "nil"; offset: number }
  | { kind: "func"; name: string; offset: number }
  | { kind: "pipe"; pipe: Pipeline; path: string[]; offset: number };

type Command = Operand[];
type Pipeline = Command[];

/** `$x :=` (declare), `$x =` (assign), `$i, $e :=` (range) before a pipeline. */
interface Decl {
  vars: string[];
  assign: boolean;
}

interface Branch {
  cond: Pipeline;
  decl?: Decl;
  body: TNode[];
}

type TNode =
  | { kind: "text"; value: string }
  | { kind: "action"; pipe: Pipeline; decl?: Decl; offset: number }
  | { kind: "if" | "with"; branches: Branch[]; otherwise: TNode[] }
  | { kind: "range"; pipe: Pipeline; decl?: Decl; body: TNode[]; otherwise: TNode[]; offset: number }
  | { kind: "template"; name: string; pipe?: Pipeline; offset: number }
  | { kind: "break" | "continue"; offset: number };

/** A parsed template: its main body and the templates it defines by name. */
export interface ParsedTemplate {
  root: TNode[];
  defines: Map<string, TNode[]>;
}

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

const isIdent = (s: string) => /^[A-Za-z_][A-Za-z0-9_]*$/.test(s);
const FIELD_CHAIN = /^(\.[A-Za-z_][A-Za-z0-9_]*)+$/;

/** Parse one action body into a pipeline of commands; `declared` says which `$names` exist. */
function parsePipeline(body: string, base: number, declared: (name: string) => boolean): Pipeline {
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
        if (!inner.length) throw new TemplateError("empty ( )", at);
        i++;
        // `(index .Config.users 0).name`: fields of the parenthesized value
        let j = i;
        while (j < body.length && !/[\s|()]/.test(body[j]!)) j++;
        const chain = body.slice(i, j);
        if (chain && !FIELD_CHAIN.test(chain))
          throw new TemplateError(`bad field name ${chain.slice(0, 20)}`, base + i);
        i = j;
        cmd.push({ kind: "pipe", pipe: inner, path: chain ? chain.slice(1).split(".") : [], offset: at });
        continue;
      }
      if (c === ")") throw new TemplateError('unexpected ")"', at);
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
        if (!FIELD_CHAIN.test(word)) throw new TemplateError(`bad field name ${word.slice(0, 20)}`, at);
        cmd.push({ kind: "field", path: word.slice(1).split("."), offset: at });
      } else if (word.startsWith("$")) {
        let k = 1;
        while (k < word.length && /[A-Za-z0-9_]/.test(word[k]!)) k++;
        const name = word.slice(0, k);
        const chain = word.slice(k);
        if (chain && !FIELD_CHAIN.test(chain))
          throw new TemplateError(`bad field name ${chain.slice(0, 20)}`, at + k);
        if (!declared(name)) throw new TemplateError(`undefined variable ${name}`, at);
        cmd.push({ kind: "var", name, path: chain ? chain.slice(1).split(".") : [], offset: at });
      } else if (/^-?\d+(\.\d+)?$/.test(word)) cmd.push({ kind: "number", value: Number(word), offset: at });
      else if (word === "true" || word === "false")
        cmd.push({ kind: "bool", value: word === "true", offset: at });
      else if (word === "nil") cmd.push({ kind: "nil", offset: at });
      else if (isIdent(word)) {
        if (!Object.hasOwn(FUNCS, word)) throw new TemplateError(`unknown template function ${word}`, at);
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

/** Split `$x := rest`, `$x = rest`, `$i, $e := rest`; no declaration gives skip 0. */
function splitDecl(body: string): { decl?: Decl; skip: number } {
  let i = 0;
  const ws = () => {
    while (i < body.length && /\s/.test(body[i]!)) i++;
  };
  const vars: string[] = [];
  for (;;) {
    ws();
    if (body[i] !== "$") return { skip: 0 };
    let j = i + 1;
    while (j < body.length && /[A-Za-z0-9_]/.test(body[j]!)) j++;
    vars.push(body.slice(i, j));
    i = j;
    ws();
    if (body[i] === "," && vars.length < 2) {
      i++;
      continue;
    }
    break;
  }
  if (body.startsWith(":=", i)) return { decl: { vars, assign: false }, skip: i + 2 };
  if (body[i] === "=" && body[i + 1] !== "=" && vars.length === 1)
    return { decl: { vars, assign: true }, skip: i + 1 };
  return { skip: 0 };
}

/** A quoted template name at the start of `s`: its value and the characters it took. */
function templateName(s: string, at: number, what: string): { name: string; len: number } {
  const lead = s.length - s.trimStart().length;
  const t = s.trimStart();
  const q = t[0];
  if (q !== '"' && q !== "`") throw new TemplateError(`${what} needs a quoted template name`, at + lead);
  const end = t.indexOf(q, 1);
  if (end < 0) throw new TemplateError("unclosed string", at + lead);
  return { name: t.slice(1, end), len: lead + end + 1 };
}

type Open =
  | { kind: "if" | "with"; node: Extract<TNode, { kind: "if" | "with" }>; body: TNode[] }
  | { kind: "range"; node: Extract<TNode, { kind: "range" }>; body: TNode[] }
  | { kind: "define" | "block"; name: string; body: TNode[] };

/** Parse a template; syntax errors, unknown functions, variables and templates throw TemplateError. */
export function parseTemplate(text: string, delims: Delims = GO_DELIMS): ParsedTemplate {
  const root: TNode[] = [];
  const defines = new Map<string, TNode[]>();
  const calls: { name: string; offset: number }[] = [];
  const stack: { open: Open; offset: number; scopes: string[][] }[] = [];
  // Variables visible here: one list per open block; a define starts afresh with only `$`.
  let scopes: string[][] = [["$"]];
  const declared = (n: string) => scopes.some((s) => s.includes(n));
  const target = () => stack[stack.length - 1]?.open.body ?? root;
  const enter = (open: Open, offset: number, fresh = false) => {
    stack.push({ open, offset, scopes });
    scopes = fresh ? [["$"]] : [...scopes, []];
  };
  /** A pipeline with an optional declaration; the declared names are visible afterwards. */
  const declPipe = (s: string, at: number, allowTwo: boolean) => {
    const { decl, skip } = splitDecl(s);
    if (decl && decl.vars.length > 1 && !allowTwo)
      throw new TemplateError("only range takes two variables", at);
    const pipe = parsePipeline(s.slice(skip), at + skip, declared);
    if (!pipe.length) throw new TemplateError("missing value", at + skip);
    if (decl?.assign && !declared(decl.vars[0]!))
      throw new TemplateError(`undefined variable ${decl.vars[0]}`, at);
    if (decl && !decl.assign) scopes[scopes.length - 1]!.push(...decl.vars);
    return { pipe, ...(decl ? { decl } : {}) };
  };
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
    const rest = body.slice(word.length);
    const restAt = at + word.length;
    const keyword = word && (rest === "" || /^[\s"`$(.]/.test(rest));
    const top = stack[stack.length - 1];
    if (keyword && (word === "if" || word === "with")) {
      const node: Extract<TNode, { kind: "if" | "with" }> = { kind: word, branches: [], otherwise: [] };
      target().push(node);
      enter({ kind: word, node, body: [] }, at);
      const { pipe, decl } = declPipe(rest, restAt, false);
      const b: Branch = { cond: pipe, ...(decl ? { decl } : {}), body: [] };
      node.branches.push(b);
      stack[stack.length - 1]!.open.body = b.body;
    } else if (keyword && word === "range") {
      const node: Extract<TNode, { kind: "range" }> = {
        kind: "range",
        pipe: [],
        body: [],
        otherwise: [],
        offset: at,
      };
      target().push(node);
      enter({ kind: "range", node, body: node.body }, at);
      Object.assign(node, declPipe(rest, restAt, true));
    } else if (keyword && word === "else") {
      const cur = top?.open;
      if (!cur || !("node" in cur)) throw new TemplateError('"else" without "if", "with" or "range"', at);
      const r = rest.trim();
      const restStart = restAt + (rest.length - rest.trimStart().length);
      const chained = /^(if|with)(?=[\s"`$(.])/.exec(r)?.[1];
      if (chained) {
        if (cur.kind === "range" || cur.kind !== chained)
          throw new TemplateError(`"else ${chained}" inside "${cur.kind}"`, at);
        const { pipe, decl } = declPipe(r.slice(chained.length), restStart + chained.length, false);
        const b: Branch = { cond: pipe, ...(decl ? { decl } : {}), body: [] };
        cur.node.branches.push(b);
        cur.body = b.body;
      } else if (r === "") {
        cur.body = cur.node.otherwise;
      } else throw new TemplateError(`unexpected ${JSON.stringify(r.slice(0, 20))} after else`, at);
    } else if (keyword && word === "end" && rest.trim() === "") {
      const done = stack.pop();
      if (!done) throw new TemplateError('"end" without a block to end', at);
      scopes = done.scopes;
      if (done.open.kind === "define" || done.open.kind === "block") {
        defines.set(done.open.name, done.open.body);
      }
    } else if (keyword && (word === "break" || word === "continue")) {
      if (rest.trim()) throw new TemplateError(`unexpected ${JSON.stringify(rest.trim())} after ${word}`, at);
      let inRange = false;
      for (let k = stack.length - 1; k >= 0 && !inRange; k--) {
        const kind = stack[k]!.open.kind;
        if (kind === "range") inRange = true;
        else if (kind === "define" || kind === "block") break;
      }
      if (!inRange) throw new TemplateError(`"${word}" outside "range"`, at);
      target().push({ kind: word, offset: at });
    } else if (keyword && word === "define") {
      if (stack.length) throw new TemplateError('"define" inside another block', at);
      const { name, len } = templateName(rest, restAt, "define");
      if (rest.slice(len).trim()) throw new TemplateError("unexpected text after the define name", at);
      if (defines.has(name)) throw new TemplateError(`template ${JSON.stringify(name)} defined twice`, at);
      enter({ kind: "define", name, body: [] }, at, true);
    } else if (keyword && (word === "template" || word === "block")) {
      const { name, len } = templateName(rest, restAt, word);
      const argText = rest.slice(len);
      const pipe = argText.trim() ? parsePipeline(argText, restAt + len, declared) : undefined;
      target().push({ kind: "template", name, ...(pipe ? { pipe } : {}), offset: at });
      calls.push({ name, offset: at });
      if (word === "block") {
        if (defines.has(name)) throw new TemplateError(`template ${JSON.stringify(name)} defined twice`, at);
        enter({ kind: "block", name, body: [] }, at, true);
      }
    } else {
      if (!body) throw new TemplateError("empty action", at);
      const { pipe, decl } = declPipe(tok.body, tok.offset, false);
      target().push({ kind: "action", pipe, ...(decl ? { decl } : {}), offset: at });
    }
  }
  const open = stack.pop();
  if (open) throw new TemplateError(`"${open.open.kind}" without "end"`, open.offset);
  for (const c of calls) {
    if (!defines.has(c.name))
      throw new TemplateError(`no template named ${JSON.stringify(c.name)}`, c.offset);
  }
  return { root, defines };
}

interface Run {
  root: TemplateData;
  defines: Map<string, TNode[]>;
  out: string[];
  size: number;
  steps: number;
  depth: number;
}
type Vars = { name: string; value: unknown }[];

const MAX_STEPS = 1_000_000;
const MAX_DEPTH = 100;

const walk = (cur: unknown, path: string[]): unknown =>
  path.reduce<unknown>(
    (v, k) =>
      v && typeof v === "object" && Object.hasOwn(v, k) ? (v as Record<string, unknown>)[k] : undefined,
    cur,
  );

function lookup(vars: Vars, name: string): { name: string; value: unknown } {
  for (let k = vars.length - 1; k >= 0; k--) if (vars[k]!.name === name) return vars[k]!;
  throw new TemplateError(`undefined variable ${name}`, 0);
}

function evalOperand(op: Operand, run: Run, dot: unknown, vars: Vars): unknown {
  switch (op.kind) {
    case "dot":
      return dot;
    case "string":
    case "number":
    case "bool":
      return op.value;
    case "nil":
      return undefined;
    case "var":
      return walk(lookup(vars, op.name).value, op.path);
    case "pipe":
      return walk(evalPipeline(op.pipe, run, dot, vars), op.path);
    case "func":
      return FUNCS[op.name]!();
    case "field": {
      const [first, ...rest] = op.path;
      if (dot === run.root && !Object.hasOwn(run.root, first!)) {
        throw new TemplateError(
          `unknown template value .${first} (known: ${Object.keys(run.root)
            .map((k) => `.${k}`)
            .join(", ")})`,
          op.offset,
        );
      }
      // Go gives "<no value>" for a missing map key; we give an empty string.
      return walk(dot, op.path.length ? [first!, ...rest] : []);
    }
  }
}

function evalCommand(cmd: Command, run: Run, dot: unknown, vars: Vars, piped: unknown[]): unknown {
  const [head, ...rest] = cmd;
  if (!head) throw new TemplateError("empty command", 0);
  if (head.kind !== "func") {
    if (rest.length || piped.length)
      throw new TemplateError("only a function can take arguments", head.offset);
    return evalOperand(head, run, dot, vars);
  }
  const args = [...rest.map((o) => evalOperand(o, run, dot, vars)), ...piped];
  try {
    return FUNCS[head.name]!(...args);
  } catch (err) {
    if (err instanceof TemplateError) throw err;
    throw new TemplateError(`${head.name}: ${(err as Error).message}`, head.offset);
  }
}

function evalPipeline(p: Pipeline, run: Run, dot: unknown, vars: Vars): unknown {
  let value: unknown;
  p.forEach((cmd, i) => {
    value = evalCommand(cmd, run, dot, vars, i === 0 ? [] : [value]);
  });
  return value;
}

function bind(decl: Decl | undefined, vars: Vars, values: unknown[]): void {
  if (!decl) return;
  if (decl.assign) {
    lookup(vars, decl.vars[0]!).value = values[values.length - 1];
    return;
  }
  // One variable takes the element; two take the key (or index) and the element.
  if (decl.vars.length === 1) vars.push({ name: decl.vars[0]!, value: values[values.length - 1] });
  else vars.push(...decl.vars.map((name, i) => ({ name, value: values[i] })));
}

/** What `range` walks: [key, element] pairs, in Go's order (maps by sorted key). */
function rangeItems(v: unknown, offset: number): [unknown, unknown][] {
  if (v === undefined || v === null) return [];
  if (Array.isArray(v)) return v.map((e, i) => [i, e]);
  if (typeof v === "number" && Number.isInteger(v)) {
    if (v > MAX_STEPS) throw new TemplateError(`range over ${v} is longer than ${MAX_STEPS} steps`, offset);
    return Array.from({ length: Math.max(0, v) }, (_, i) => [i, i]);
  }
  if (typeof v === "object") {
    const o = v as Record<string, unknown>;
    return Object.keys(o)
      .sort()
      .map((k) => [k, o[k]]);
  }
  throw new TemplateError(`range can't iterate over ${str(v).slice(0, 40)}`, offset);
}

type Signal = "break" | "continue" | undefined;

function execute(nodes: TNode[], run: Run, dot: unknown, vars: Vars): Signal {
  const write = (s: string) => {
    run.size += s.length;
    if (run.size > MAX_OUTPUT) throw new TemplateError("template output larger than 1 MiB", 0);
    run.out.push(s);
  };
  for (const n of nodes) {
    if (++run.steps > MAX_STEPS) throw new TemplateError(`template runs more than ${MAX_STEPS} steps`, 0);
    switch (n.kind) {
      case "text":
        write(n.value);
        break;
      case "action": {
        const v = evalPipeline(n.pipe, run, dot, vars);
        if (n.decl) bind(n.decl, vars, [v]);
        else write(str(v));
        break;
      }
      case "if":
      case "with": {
        const mark = vars.length;
        let sig: Signal;
        let taken = false;
        for (const b of n.branches) {
          const v = evalPipeline(b.cond, run, dot, vars);
          bind(b.decl, vars, [v]);
          if (truthy(v)) {
            sig = execute(b.body, run, n.kind === "with" ? v : dot, vars);
            taken = true;
            break;
          }
        }
        if (!taken) sig = execute(n.otherwise, run, dot, vars);
        vars.length = mark;
        if (sig) return sig;
        break;
      }
      case "range": {
        const items = rangeItems(evalPipeline(n.pipe, run, dot, vars), n.offset);
        const mark = vars.length;
        if (!items.length) {
          const sig = execute(n.otherwise, run, dot, vars);
          vars.length = mark;
          if (sig) return sig;
          break;
        }
        for (const [k, e] of items) {
          bind(n.decl, vars, [k, e]);
          const sig = execute(n.body, run, e, vars);
          vars.length = mark;
          if (sig === "break") break;
        }
        break;
      }
      case "template": {
        const body = run.defines.get(n.name)!;
        if (run.depth >= MAX_DEPTH)
          throw new TemplateError(`templates call each other deeper than ${MAX_DEPTH} levels`, n.offset);
        const v = n.pipe ? evalPipeline(n.pipe, run, dot, vars) : undefined;
        run.depth++;
        execute(body, run, v, [{ name: "$", value: v }]);
        run.depth--;
        break;
      }
      case "break":
      case "continue":
        return n.kind;
    }
  }
  return undefined;
}

/** Render `text` with `data` (its keys are the top-level `.Names`). */
export function renderTemplate(text: string, data: TemplateData, delims: Delims = GO_DELIMS): string {
  if (!text.includes(delims[0])) return text;
  const t = parseTemplate(text, delims);
  const run: Run = { root: data, defines: t.defines, out: [], size: 0, steps: 0, depth: 0 };
  execute(t.root, run, data, [{ name: "$", value: data }]);
  return run.out.join("");
}

/** yip's `.Random` for hostnames: 32 characters of [0-9a-z], new at every render. */
export function randomString(n = 32): string {
  return rand(n, "1234567890abcdefghijklmnopqrstuvwxyz", "Random");
}
