/**
 * A step's `if:` evaluated without a shell when it is only file tests — `[ -f /run/cos/live_mode ]`,
 * `[ ! -s /etc/machine-id ]`, `test -d X && [ ! -e Y ]` — the form nearly every Kairos config
 * (upstream's own included) uses. Each shell start costs ~0.15 s under emulation, and the
 * installed boot evaluates such conditions in the initramfs before the root is switched.
 * Anything else (variables, command substitution, other operators, quoting beyond plain
 * words) is not recognised and goes to the shell as before.
 */
import { accessSync, constants, lstatSync, type Stats, statSync } from "node:fs";

/** The file-test operators understood here (as `test` does them, for root). */
type Op = "-e" | "-f" | "-d" | "-s" | "-x" | "-L" | "-h";
const OPS = new Set<string>(["-e", "-f", "-d", "-s", "-x", "-L", "-h"]);

interface FileTest {
  negate: boolean;
  op: Op;
  path: string;
}

/** One test, then the && / || joining it to the next (shell: left to right, equal precedence). */
interface Chain {
  tests: FileTest[];
  joins: ("&&" | "||")[];
}

/** A word: unquoted, or in single or double quotes, without anything the shell would expand. */
const WORD = /^(?:'([^'\\$`"]*)'|"([^"\\$`']*)"|([A-Za-z0-9_./+@%:,=-]+))/;

function tokens(text: string): string[] | undefined {
  const out: string[] = [];
  let rest = text.trim();
  while (rest) {
    if (rest.startsWith("&&") || rest.startsWith("||")) {
      out.push(rest.slice(0, 2));
      rest = rest.slice(2).trimStart();
      continue;
    }
    if (rest[0] === "[" || rest[0] === "]" || rest[0] === "!") {
      // `[`, `]` and `!` are words of their own only when a blank or the end follows.
      if (rest.length > 1 && !/\s/.test(rest[1]!) && !(rest[0] === "]" && /^(&&|\|\|)/.test(rest.slice(1))))
        return undefined;
      out.push(rest[0]);
      rest = rest.slice(1).trimStart();
      continue;
    }
    const m = WORD.exec(rest);
    if (!m) return undefined;
    const after = rest.slice(m[0].length);
    if (after && !/^\s/.test(after) && !/^(&&|\|\|)/.test(after)) return undefined;
    // A quoted word is marked so that `"!"` or `"]"` is never taken for the operator.
    out.push(m[3] ?? `\u0000${m[1] ?? m[2]}`);
    rest = after.trimStart();
  }
  return out;
}

/** The condition as a chain of file tests, or undefined when it is anything else. */
export function parseFileTests(text: string): Chain | undefined {
  const t = tokens(text);
  if (!t?.length) return undefined;
  const chain: Chain = { tests: [], joins: [] };
  let i = 0;
  for (;;) {
    let bracket = false;
    if (t[i] === "[") bracket = true;
    else if (t[i] !== "test") return undefined;
    i++;
    let negate = false;
    if (t[i] === "!") {
      negate = true;
      i++;
    }
    const op = t[i++];
    const word = t[i++];
    if (op === undefined || !OPS.has(op) || word === undefined) return undefined;
    if (word === "]" || word === "&&" || word === "||") return undefined;
    if (bracket && t[i++] !== "]") return undefined;
    chain.tests.push({ negate, op: op as Op, path: word.replace(/^\u0000/, "") });
    if (i === t.length) return chain;
    const join = t[i++];
    if (join !== "&&" && join !== "||") return undefined;
    chain.joins.push(join);
  }
}

/**
 * Where a test's path is looked up: `resolve(path, followLast)` gives the host path to stat,
 * or throws when it cannot say (the caller then asks the shell).
 */
export type PathResolver = (path: string, followLast: boolean) => string;

function holds(test: FileTest, resolve: PathResolver): boolean {
  if (test.path === "") return false;
  const link = test.op === "-L" || test.op === "-h";
  const path = resolve(test.path, !link);
  let st: Stats;
  try {
    st = link ? lstatSync(path) : statSync(path);
  } catch {
    return false;
  }
  switch (test.op) {
    case "-e":
      return true;
    case "-f":
      return st.isFile();
    case "-d":
      return st.isDirectory();
    case "-s":
      return st.size > 0;
    case "-L":
    case "-h":
      return st.isSymbolicLink();
    case "-x":
      try {
        accessSync(path, constants.X_OK);
        return true;
      } catch {
        return false;
      }
  }
}

/**
 * The condition's truth when it is a chain of file tests; undefined when it is not (or a path
 * cannot be resolved here): run it with the shell then.
 */
export function evaluateFileTests(text: string, resolve: PathResolver): boolean | undefined {
  const chain = parseFileTests(text);
  if (!chain) return undefined;
  try {
    let value = chain.tests[0]!.negate !== holds(chain.tests[0]!, resolve);
    for (const [k, join] of chain.joins.entries()) {
      // `a && b`: b only runs when a held; `a || b`: only when it did not.
      if ((join === "&&") !== value) continue;
      const t = chain.tests[k + 1]!;
      value = t.negate !== holds(t, resolve);
    }
    return value;
  } catch {
    return undefined;
  }
}
