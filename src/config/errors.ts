import { KairosError } from "../sys/index.js";

/** A key path inside a config: map keys and list indexes, outermost first. */
export type KeyPath = readonly (string | number)[];

/** Render a key path the way users write it: `stages.boot[0].files[1].permissions`. */
export function formatKeyPath(path: KeyPath): string {
  let out = "";
  for (const seg of path) {
    if (typeof seg === "number") out += `[${seg}]`;
    else if (/^[A-Za-z0-9_-]+$/.test(seg)) out += out ? `.${seg}` : seg;
    else out += `[${JSON.stringify(seg)}]`;
  }
  return out;
}

/** A place in a source file (1-based line and column). */
export interface SourcePos {
  file: string;
  line: number;
  col: number;
}

/** One problem in a config file, pointing at the file, line, column and key. */
export class ConfigError extends KairosError {
  override readonly name = "ConfigError";
  readonly keyPath: string;
  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    keyPath: KeyPath | string,
    readonly detail: string,
    hint?: string,
  ) {
    const kp = typeof keyPath === "string" ? keyPath : formatKeyPath(keyPath);
    super(`${file}:${line}:${col}: ${kp ? `${kp}: ` : ""}${detail}`, hint);
    this.keyPath = kp;
  }
}

/** Several config errors at once; the CLI prints one per line. */
export class ConfigErrors extends KairosError {
  override readonly name = "ConfigErrors";
  constructor(readonly errors: ConfigError[]) {
    super(
      errors.map((e) => e.message).join("\n"),
      errors.length === 1 ? errors[0]!.hint : "fix the lines above; nothing was changed",
    );
  }
}

/** A non-fatal remark: unknown key, skipped file, ignored kernel argument. */
export interface ConfigNote {
  level: "warning" | "note";
  file: string;
  line: number;
  col: number;
  keyPath: string;
  message: string;
}

export function formatNote(n: ConfigNote): string {
  const where = n.line > 0 ? `${n.file}:${n.line}:${n.col}` : n.file;
  return `${n.level}: ${where}: ${n.keyPath ? `${n.keyPath}: ` : ""}${n.message}`;
}
