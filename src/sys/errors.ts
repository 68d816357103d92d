/**
 * Errors the user is meant to read. `message` is one line saying what went wrong;
 * `hint` says what to do about it. The CLI prints both and exits non-zero without a stack.
 */
export class KairosError extends Error {
  override readonly name: string = "KairosError";
  constructor(
    message: string,
    readonly hint?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A required external program is not installed. */
export class MissingToolError extends KairosError {
  override readonly name = "MissingToolError";
}

/** An external program ran and failed: carries the command line and the tail of its stderr. */
export class ToolFailedError extends KairosError {
  override readonly name = "ToolFailedError";
  constructor(
    readonly command: string,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stderrTail: string,
  ) {
    const how = signal ? `was killed by ${signal}` : `exited with code ${exitCode}`;
    super(
      `${command} ${how}${stderrTail ? `:\n${indent(stderrTail)}` : ""}`,
      "the lines above are the end of the tool's own error output",
    );
  }
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split("\n")
    .map((l) => `    ${l}`)
    .join("\n");
}

/** Render any thrown value as the lines a user sees. */
export function describeError(err: unknown): string {
  if (err instanceof KairosError) {
    return `error: ${err.message}${err.hint ? `\nhint: ${err.hint}` : ""}`;
  }
  if (err instanceof Error) return `error: ${err.message}`;
  return `error: ${String(err)}`;
}
