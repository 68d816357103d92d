/**
 * The small part of Go templates (with sprig functions) that Kairos configs use in `hostname`:
 * `{{ .MachineID }}`, `{{ trunc 4 .MachineID }}`, `{{ .MachineID | trunc 8 | upper }}`, and
 * `upper`, `lower`, `trim`, `replace OLD NEW`. Anything else is an error, not silently kept.
 */

export interface TemplateVars {
  MachineID: string;
  Hostname?: string;
}

type Fn = (...args: string[]) => string;

const FUNCS: Record<string, Fn> = {
  trunc: (n, s) => {
    const k = Number(n);
    if (!Number.isInteger(k)) throw new Error(`trunc needs a whole number, got ${n}`);
    return k >= 0 ? s!.slice(0, k) : s!.slice(k);
  },
  upper: (s) => s!.toUpperCase(),
  lower: (s) => s!.toLowerCase(),
  trim: (s) => s!.trim(),
  replace: (a, b, s) => s!.split(a!).join(b!),
};

function tokens(expr: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|(\S+)/g;
  for (const m of expr.matchAll(re)) out.push(m[1] !== undefined ? JSON.parse(`"${m[1]}"`) : m[2]!);
  return out;
}

function evalCommand(words: string[], vars: TemplateVars, piped?: string): string {
  const arg = (w: string): string => {
    if (w.startsWith(".")) {
      const v = (vars as unknown as Record<string, unknown>)[w.slice(1)];
      if (typeof v !== "string") throw new Error(`unknown template value ${w}`);
      return v;
    }
    return w;
  };
  const [head, ...rest] = words;
  if (head === undefined) throw new Error("empty template expression");
  if (head.startsWith(".")) {
    if (rest.length || piped !== undefined) throw new Error(`unexpected arguments after ${head}`);
    return arg(head);
  }
  const fn = FUNCS[head];
  if (!fn) throw new Error(`unknown template function ${head} (known: ${Object.keys(FUNCS).join(", ")})`);
  const args = rest.map(arg);
  if (piped !== undefined) args.push(piped);
  if (args.length !== fn.length) throw new Error(`${head} takes ${fn.length} argument(s)`);
  return fn(...args);
}

/** Expand every `{{ … }}` in `text`. */
export function renderTemplate(text: string, vars: TemplateVars): string {
  return text.replace(/\{\{-?\s*([\s\S]*?)\s*-?\}\}/g, (_, expr: string) => {
    let value: string | undefined;
    for (const part of expr.split("|")) value = evalCommand(tokens(part.trim()), vars, value);
    return value ?? "";
  });
}
