/**
 * Regular expressions from configs (`only_os`, `only_os_version`, `only_arch`) matched in linear
 * time, never handed to the JavaScript engine: a config's pattern cannot backtrack for hours or
 * exhaust memory compiling. The syntax is the part of Go's RE2 that such filters use:
 * literals, `.`, classes `[a-z0-9_]` / `[^…]`, escapes `\d \w \s \D \W \S \. \\ …`, anchors
 * `^ $`, groups `( )` `(?: )`, alternation `|`, quantifiers `* + ?` (also lazy `*?`, same match)
 * and `{n}` `{n,}` `{n,m}` (m ≤ 100), and a leading `(?i)`. Matching is unanchored, as Go's
 * MatchString. Anything else is a PatternError with the offset, which the validator reports.
 */

export class PatternError extends Error {
  override readonly name = "PatternError";
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

type Pred = (c: number) => boolean;
type Node =
  | { t: "char"; p: Pred }
  | { t: "cat"; xs: Node[] }
  | { t: "alt"; xs: Node[] }
  | { t: "rep"; x: Node; min: number; max: number }
  | { t: "bol" }
  | { t: "eol" }
  | { t: "empty" };

const MAX_PATTERN = 1000;
const MAX_PROGRAM = 20_000;
const MAX_REPEAT = 100;

const isDigit: Pred = (c) => c >= 48 && c <= 57;
const isWord: Pred = (c) => isDigit(c) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isSpace: Pred = (c) => c === 32 || (c >= 9 && c <= 13);

function escapeClass(ch: string): Pred | undefined {
  switch (ch) {
    case "d":
      return isDigit;
    case "D":
      return (c) => !isDigit(c);
    case "w":
      return isWord;
    case "W":
      return (c) => !isWord(c);
    case "s":
      return isSpace;
    case "S":
      return (c) => !isSpace(c);
    default:
      return undefined;
  }
}

function escapeChar(ch: string, at: number): number {
  const simple: Record<string, number> = { n: 10, t: 9, r: 13, f: 12, v: 11 };
  if (ch in simple) return simple[ch]!;
  if (/[A-Za-z0-9]/.test(ch)) throw new PatternError(`unsupported escape \\${ch}`, at);
  return ch.charCodeAt(0);
}

function parse(src: string, fold: boolean): Node {
  let i = 0;
  const lit = (code: number): Pred => {
    if (!fold) return (c) => c === code;
    const lo = String.fromCharCode(code).toLowerCase().charCodeAt(0);
    const up = String.fromCharCode(code).toUpperCase().charCodeAt(0);
    return (c) => c === lo || c === up;
  };
  const alt = (depth: number): Node => {
    if (depth > 100) throw new PatternError("groups nested too deeply", i);
    const xs: Node[] = [cat(depth)];
    while (src[i] === "|") {
      i++;
      xs.push(cat(depth));
    }
    return xs.length === 1 ? xs[0]! : { t: "alt", xs };
  };
  const cat = (depth: number): Node => {
    const xs: Node[] = [];
    while (i < src.length && src[i] !== "|" && src[i] !== ")") xs.push(quantified(atom(depth)));
    return xs.length === 0 ? { t: "empty" } : xs.length === 1 ? xs[0]! : { t: "cat", xs };
  };
  const quantified = (x: Node): Node => {
    for (;;) {
      const c = src[i];
      const at = i;
      let min: number;
      let max: number;
      if (c === "*") [min, max] = [0, Number.POSITIVE_INFINITY];
      else if (c === "+") [min, max] = [1, Number.POSITIVE_INFINITY];
      else if (c === "?") [min, max] = [0, 1];
      else if (c === "{") {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(src.slice(i, i + 24));
        if (!m) return x; // a literal "{", as in Go
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === "" ? Number.POSITIVE_INFINITY : Number(m[3]);
        if (min > MAX_REPEAT || (Number.isFinite(max) && max > MAX_REPEAT) || max < min) {
          throw new PatternError(`repeat count out of range (at most ${MAX_REPEAT})`, at);
        }
        i += m[0].length - 1;
      } else return x;
      i++;
      if (src[i] === "?") i++; // lazy: the same set of matches
      if (x.t === "bol" || x.t === "eol" || x.t === "empty") throw new PatternError("nothing to repeat", at);
      x = { t: "rep", x, min, max };
    }
  };
  const atom = (depth: number): Node => {
    const at = i;
    const c = src[i++]!;
    switch (c) {
      case "(": {
        if (src.startsWith("?:", i)) i += 2;
        else if (src[i] === "?") throw new PatternError("unsupported group flag", at);
        const x = alt(depth + 1);
        if (src[i] !== ")") throw new PatternError("missing )", at);
        i++;
        return x;
      }
      case ")":
        throw new PatternError("unexpected )", at);
      case "^":
        return { t: "bol" };
      case "$":
        return { t: "eol" };
      case ".":
        return { t: "char", p: (ch) => ch !== 10 };
      case "*":
      case "+":
      case "?":
        throw new PatternError("nothing to repeat", at);
      case "[":
        return { t: "char", p: charClass(at) };
      case "\\": {
        const e = src[i++];
        if (e === undefined) throw new PatternError("trailing \\", at);
        return { t: "char", p: escapeClass(e) ?? lit(escapeChar(e, at)) };
      }
      default:
        return { t: "char", p: lit(c.charCodeAt(0)) };
    }
  };
  const charClass = (at: number): Pred => {
    let negate = false;
    if (src[i] === "^") {
      negate = true;
      i++;
    }
    const parts: Pred[] = [];
    let first = true;
    while (i < src.length && (src[i] !== "]" || first)) {
      first = false;
      let lo: number;
      if (src[i] === "\\") {
        const e = src[i + 1];
        if (e === undefined) throw new PatternError("trailing \\", i);
        i += 2;
        const cls = escapeClass(e);
        if (cls) {
          parts.push(cls);
          continue;
        }
        lo = escapeChar(e, i - 2);
      } else lo = src.charCodeAt(i++);
      let hi = lo;
      if (src[i] === "-" && src[i + 1] !== "]" && i + 1 < src.length) {
        i++;
        if (src[i] === "\\") {
          i++;
          hi = escapeChar(src[i] ?? "", i);
        } else hi = src.charCodeAt(i);
        i++;
        if (hi < lo) throw new PatternError("invalid class range", at);
      }
      const [l, h] = [lo, hi];
      parts.push(
        fold
          ? (ch) => {
              const low = String.fromCharCode(ch).toLowerCase().charCodeAt(0);
              const up = String.fromCharCode(ch).toUpperCase().charCodeAt(0);
              return (low >= l && low <= h) || (up >= l && up <= h);
            }
          : (ch) => ch >= l && ch <= h,
      );
    }
    if (src[i] !== "]") throw new PatternError("missing ]", at);
    i++;
    return negate ? (ch) => !parts.some((p) => p(ch)) : (ch) => parts.some((p) => p(ch));
  };
  const node = alt(0);
  if (i < src.length) throw new PatternError(`unexpected ${src[i]}`, i);
  return node;
}

type Inst =
  | { op: "char"; p: Pred }
  | { op: "split"; a: number; b: number }
  | { op: "jmp"; to: number }
  | { op: "bol" }
  | { op: "eol" }
  | { op: "match" };

function compile(node: Node): Inst[] {
  const prog: Inst[] = [];
  const emit = (x: Inst) => {
    if (prog.length >= MAX_PROGRAM) throw new PatternError("pattern too large once repeats are expanded", 0);
    prog.push(x);
    return prog.length - 1;
  };
  const gen = (n: Node): void => {
    switch (n.t) {
      case "char":
        emit({ op: "char", p: n.p });
        return;
      case "bol":
      case "eol":
        emit({ op: n.t });
        return;
      case "empty":
        return;
      case "cat":
        for (const x of n.xs) gen(x);
        return;
      case "alt": {
        const jumps: number[] = [];
        n.xs.forEach((x, k) => {
          if (k < n.xs.length - 1) {
            const s = emit({ op: "split", a: 0, b: 0 });
            (prog[s] as { a: number }).a = prog.length;
            gen(x);
            jumps.push(emit({ op: "jmp", to: 0 }));
            (prog[s] as { b: number }).b = prog.length;
          } else gen(x);
        });
        for (const j of jumps) (prog[j] as { to: number }).to = prog.length;
        return;
      }
      case "rep": {
        for (let k = 0; k < n.min; k++) gen(n.x);
        if (!Number.isFinite(n.max)) {
          const s = emit({ op: "split", a: 0, b: 0 });
          (prog[s] as { a: number }).a = prog.length;
          gen(n.x);
          emit({ op: "jmp", to: s });
          (prog[s] as { b: number }).b = prog.length;
          return;
        }
        const splits: number[] = [];
        for (let k = n.min; k < n.max; k++) {
          const s = emit({ op: "split", a: 0, b: 0 });
          (prog[s] as { a: number }).a = prog.length;
          splits.push(s);
          gen(n.x);
        }
        for (const s of splits) (prog[s] as { b: number }).b = prog.length;
        return;
      }
    }
  };
  gen(node);
  emit({ op: "match" });
  return prog;
}

/** A compiled pattern; `test` runs in time proportional to pattern size × input length. */
export interface SafePattern {
  source: string;
  test(input: string): boolean;
}

/** Compile a config's pattern; PatternError (with offset) when it is not in the supported syntax. */
export function compilePattern(source: string): SafePattern {
  if (source.length > MAX_PATTERN) throw new PatternError(`pattern longer than ${MAX_PATTERN} characters`, 0);
  const fold = source.startsWith("(?i)");
  const prog = compile(parse(fold ? source.slice(4) : source, fold));
  const test = (input: string): boolean => {
    const n = Math.min(input.length, 1 << 20);
    let clist: number[] = [];
    let nlist: number[] = [];
    const mark = new Int32Array(prog.length).fill(-1);
    // Follow split/jmp/assertions from pc at position pos, adding the threads that read a char.
    const add = (list: number[], pc0: number, pos: number, gen: number): boolean => {
      const stack = [pc0];
      while (stack.length) {
        const pc = stack.pop()!;
        if (mark[pc] === gen) continue;
        mark[pc] = gen;
        const ins = prog[pc]!;
        switch (ins.op) {
          case "match":
            return true;
          case "jmp":
            stack.push(ins.to);
            break;
          case "split":
            stack.push(ins.b, ins.a);
            break;
          case "bol":
            if (pos === 0) stack.push(pc + 1);
            break;
          case "eol":
            if (pos === n) stack.push(pc + 1);
            break;
          case "char":
            list.push(pc);
        }
      }
      return false;
    };
    let gen = 0;
    for (let pos = 0; pos <= n; pos++) {
      // Unanchored: a new thread may start at every position.
      if (add(clist, 0, pos, gen)) return true;
      if (pos === n) break;
      const c = input.charCodeAt(pos);
      gen++;
      nlist = [];
      for (const pc of clist) {
        const ins = prog[pc] as { op: "char"; p: Pred };
        if (ins.p(c) && add(nlist, pc + 1, pos + 1, gen)) return true;
      }
      [clist, nlist] = [nlist, clist];
    }
    return false;
  };
  return { source, test };
}
