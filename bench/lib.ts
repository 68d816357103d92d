import { spawn } from "node:child_process";
import { loadavg } from "node:os";
import {
  type Accel,
  type AccelRequest,
  chooseAccel,
  parseAccel,
  requestedAccel,
} from "../src/artifacts/index.js";

/** One timed run of a command: wall seconds, CPU seconds and peak RSS (from GNU time). */
export interface Timing {
  seconds: number;
  cpuSeconds: number;
  maxRssMiB: number;
}

/** Run a command under /usr/bin/time and return its timing; throws with stderr on failure. */
export function timed(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Timing> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn("/usr/bin/time", ["-f", "TIMING %e %U %S %M", cmd, ...args], {
      env,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.on("error", reject);
    child.on("close", (code) => {
      const m = /TIMING (\S+) (\S+) (\S+) (\d+)/.exec(err);
      if (code !== 0 || !m)
        return reject(new Error(`${cmd} ${args.join(" ")} failed (${code}):\n${err.slice(-2000)}`));
      const wall = Number(process.hrtime.bigint() - started) / 1e9;
      resolve({ seconds: wall, cpuSeconds: Number(m[2]) + Number(m[3]), maxRssMiB: Number(m[4]) / 1024 });
    });
  });
}

/** Sum timings of steps that run one after another. */
export function sum(...ts: Timing[]): Timing {
  return {
    seconds: ts.reduce((a, t) => a + t.seconds, 0),
    cpuSeconds: ts.reduce((a, t) => a + t.cpuSeconds, 0),
    maxRssMiB: Math.max(...ts.map((t) => t.maxRssMiB)),
  };
}

/** The better of several timings (least wall time), to damp noise from other load. */
export function best(ts: Timing[]): Timing {
  return ts.reduce((a, b) => (b.seconds < a.seconds ? b : a));
}

/** Print a figure as a ratio against the native tool, with its goal. */
export function report(
  name: string,
  ours: Timing,
  native: Timing,
  nativeName: string,
  goal?: number,
): string {
  const ratio = ours.seconds / native.seconds;
  const cpuRatio = ours.cpuSeconds / native.cpuSeconds;
  const verdict =
    goal === undefined ? "" : ratio <= goal ? ` (goal ≤ ${goal}×: met)` : ` (goal ≤ ${goal}×: NOT met)`;
  const line =
    `${name}: ours ${ours.seconds.toFixed(1)} s (cpu ${ours.cpuSeconds.toFixed(1)} s, rss ${ours.maxRssMiB.toFixed(0)} MiB), ` +
    `${nativeName} ${native.seconds.toFixed(1)} s (cpu ${native.cpuSeconds.toFixed(1)} s) → ${ratio.toFixed(2)}× wall, ${cpuRatio.toFixed(2)}× cpu${verdict}`;
  console.log(line);
  return line;
}

/**
 * `--accel auto|kvm|tcg` (or `--accel=…`) anywhere in `argv`, else $KAIROS_ACCEL, else tcg:
 * the published boot figures are software emulation, so a bench uses KVM only when asked.
 * Returns the request and the other arguments.
 */
export function accelFlag(argv: string[]): { request: AccelRequest; rest: string[] } {
  const rest: string[] = [];
  let flag: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--accel") flag = argv[++i] ?? "";
    else if (a.startsWith("--accel=")) flag = a.slice("--accel=".length);
    else rest.push(a);
  }
  if (flag !== undefined) return { request: parseAccel(flag, "--accel"), rest };
  return { request: process.env.KAIROS_ACCEL ? requestedAccel(undefined) : "tcg", rest };
}

/** Resolve a bench's accelerator request (auto probes with `kernel`), saying what it chose. */
export async function benchAccel(request: AccelRequest, kernel: () => Promise<string>): Promise<Accel> {
  const c = await chooseAccel(request, { kernel });
  if (c.note) console.log(c.note);
  console.log(`accelerator: ${c.accel}`);
  return c.accel;
}

/** The host's load averages (1, 5, 15 min), for the line beside a figure: the host is shared. */
export function loadLine(): string {
  return loadavg()
    .map((x) => x.toFixed(1))
    .join(" ");
}
