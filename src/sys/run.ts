import { type ChildProcess, spawn } from "node:child_process";
import type { Readable, Writable } from "node:stream";
import { ToolFailedError } from "./errors.js";
import { requireTool } from "./tools.js";

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Bytes or text written to the child's stdin, then stdin is closed. */
  input?: string | Uint8Array;
  /** Aborting kills the child's whole process group. */
  signal?: AbortSignal;
  /** Keep this many bytes of stderr for the error message (default 4 KiB). */
  stderrTailBytes?: number;
  /** Pass the child's stdout/stderr through to ours instead of capturing them. */
  inherit?: boolean;
  /** The command shown in errors, when the argv is a wrapper around the real tool. */
  display?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Quote an argv for display in an error message. */
export function formatCommand(cmd: string, args: readonly string[]): string {
  return [cmd, ...args]
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`))
    .join(" ");
}

/** Keeps the last `limit` bytes written to it. */
class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  constructor(private readonly limit: number) {}
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.limit && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
  }
  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString("utf8");
  }
}

/** A started child process; `done` settles when it exits (rejects with ToolFailedError on failure). */
export interface Started {
  child: ChildProcess;
  stdin: Writable;
  stdout: Readable;
  done: Promise<void>;
  /** Kill the child's process group. */
  kill(signal?: NodeJS.Signals): void;
}

/**
 * Start `tool` with piped stdio, in its own process group so that an abort kills
 * everything it spawned. The caller consumes stdout; stderr is kept as a tail for errors.
 */
export function start(tool: string, args: readonly string[], opts: RunOptions = {}): Started {
  const cmd = tool.includes("/") ? tool : requireTool(tool);
  const child = spawn(cmd, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ["pipe", opts.inherit ? "inherit" : "pipe", opts.inherit ? "inherit" : "pipe"],
    detached: true,
  });
  const tail = new TailBuffer(opts.stderrTailBytes ?? 4096);
  child.stderr?.on("data", (c: Buffer) => tail.push(c));
  const kill = (signal: NodeJS.Signals = "SIGTERM") => {
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, signal);
      } catch {
        // already gone
      }
    }
  };
  const onAbort = () => kill("SIGKILL");
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const done = new Promise<void>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (code, sig) => {
      opts.signal?.removeEventListener("abort", onAbort);
      if (code === 0) resolve();
      else reject(new ToolFailedError(opts.display ?? formatCommand(tool, args), code, sig, tail.toString()));
    });
  });
  // Swallow EPIPE on stdin: the exit status tells the real story.
  child.stdin!.on("error", () => {});
  return { child, stdin: child.stdin!, stdout: child.stdout ?? (null as unknown as Readable), done, kill };
}

/** Run `tool` to completion and return its output; throws ToolFailedError with the stderr tail. */
export async function run(tool: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const p = start(tool, args, opts);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  p.stdout?.on("data", (c: Buffer) => out.push(c));
  p.child.stderr?.on("data", (c: Buffer) => err.push(c));
  if (opts.input !== undefined) p.stdin.end(opts.input);
  else p.stdin.end();
  await p.done;
  return { stdout: Buffer.concat(out).toString("utf8"), stderr: Buffer.concat(err).toString("utf8") };
}
