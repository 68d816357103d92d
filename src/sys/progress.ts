import { Transform, type TransformCallback, type Writable } from "node:stream";

/**
 * Progress for long operations, against a total known up front (bytes of a blob or a file,
 * entries of a list).
 *
 * - tty: one redrawn line per running task: bar, percent, done/total, rate, time left.
 *   Lines are cut to the terminal width (never wrapped); ASCII bar when the locale is not
 *   UTF-8; colour only on the ✔/✖ marks, and none with NO_COLOR or TERM=dumb.
 * - plain (not a terminal, TERM=dumb): a line when a task starts, one at most every
 *   `plainIntervalMs` (10 s) while it runs, and one when it ends. CI logs stay short.
 * - json (--json): one JSON object per event on stderr: start, progress (at most one per
 *   second per task), done/failed. Each carries `total` when known; `done` events end at
 *   done == total.
 * - silent (--quiet): nothing; errors are printed by the command's error handler.
 *
 * A caller's contract: `task(name, total, unit)`, then `update(done)` as work is
 * done (cheap: it only stores a number; drawing is throttled), then `finish()` or `fail()`.
 * For a stream, `pipeline(src, meter(task), dest)`.
 */
export type ProgressMode = "tty" | "plain" | "json" | "silent";
export type ProgressUnit = "bytes" | "items";

export interface Task {
  /** Set the amount done (same unit as total); a new total may be given. */
  update(done: number, total?: number): void;
  /** Mark finished (done becomes the total), with an optional short result note. */
  finish(note?: string): void;
  /** Mark failed. */
  fail(reason: string): void;
}

export interface Progress {
  readonly mode: ProgressMode;
  task(name: string, total?: number, unit?: ProgressUnit): Task;
  /** An informational line (kept out of the way of bars; nothing with --quiet). */
  info(message: string): void;
}

/** What the environment and the stream say about how to draw. */
export interface ProgressStyle {
  /** Block characters and ✔/✖, or plain ASCII. */
  unicode: boolean;
  /** ANSI colour on the status marks. */
  color: boolean;
}

export interface ProgressOptions {
  /** Milliseconds since some fixed point; injected by tests. */
  now?: () => number;
  /** Environment to read LANG/LC_*, NO_COLOR and TERM from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Minimum time between plain lines of one task (default 10 s). */
  plainIntervalMs?: number;
  /** Minimum time between JSON progress events of one task (default 1 s). */
  jsonIntervalMs?: number;
  /** Redraw period of the tty block (default 100 ms); 0: redraw only on finish/fail/info (tests). */
  redrawMs?: number;
}

type TtyStream = Writable & { isTTY?: boolean; columns?: number };

export function progressMode(
  opts: { json?: boolean; quiet?: boolean },
  stream: Writable = process.stderr,
  env: NodeJS.ProcessEnv = process.env,
): ProgressMode {
  if (opts.quiet) return "silent";
  if (opts.json) return "json";
  return (stream as TtyStream).isTTY && env.TERM !== "dumb" ? "tty" : "plain";
}

/** UTF-8 when the first set of LC_ALL, LC_CTYPE, LANG names it (POSIX locale precedence). */
export function progressStyle(env: NodeJS.ProcessEnv = process.env): ProgressStyle {
  const locale = env.LC_ALL || env.LC_CTYPE || env.LANG || "";
  return {
    unicode: /utf-?8/i.test(locale),
    color: !env.NO_COLOR && env.TERM !== "dumb",
  };
}

// ---------------------------------------------------------------- formatting (pure)

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

/** "60.1/120.3 MiB" (one unit, the total's, so the two numbers compare at a glance). */
export function formatDoneTotal(done: number, total: number, unit: ProgressUnit): string {
  if (unit === "items") return `${done}/${total}`;
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (total >= 1024 ** (i + 1) && i < units.length - 1) i++;
  const f = (n: number) => (i === 0 ? String(n) : (n / 1024 ** i).toFixed(1));
  return `${f(done)}/${f(total)} ${units[i]}`;
}

export function formatAmount(n: number, unit: ProgressUnit): string {
  return unit === "bytes" ? formatBytes(n) : String(n);
}

/** "12.3 MiB/s", "450 items/s", or undefined when no rate is known yet. */
export function formatRate(rate: number | undefined, unit: ProgressUnit): string | undefined {
  if (rate === undefined || !Number.isFinite(rate)) return undefined;
  if (unit === "bytes") return `${formatBytes(Math.round(rate))}/s`;
  return `${rate >= 10 ? Math.round(rate) : rate.toFixed(1)} items/s`;
}

/** "42s", "3m05s", "2h07m". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Seconds left at `rate`, or undefined when it cannot be told. */
export function estimateSecondsLeft(done: number, total: number | undefined, rate: number | undefined) {
  if (!total || rate === undefined || rate <= 0) return undefined;
  return Math.max(0, total - done) / rate;
}

export function percent(done: number, total: number): number {
  return total > 0 ? Math.min(100, Math.floor((done / total) * 100)) : 100;
}

/** Cut `s` to `width` characters (code points), marking the cut. */
export function fitWidth(s: string, width: number, unicode: boolean): string {
  const chars = Array.from(s);
  if (chars.length <= width) return s;
  if (width <= 0) return "";
  const mark = unicode ? "…" : ".";
  return chars.slice(0, width - 1).join("") + mark;
}

/**
 * Rate over a sliding window of samples (default 5 s): reacts to a stalled or resumed
 * transfer within seconds, without jumping at every chunk.
 */
export class RateMeter {
  private samples: { t: number; done: number }[] = [];
  constructor(private readonly windowMs = 5000) {}
  sample(t: number, done: number): void {
    const last = this.samples[this.samples.length - 1];
    // Samples closer than 100 ms replace the newest one (never the oldest, the anchor).
    if (last && this.samples.length > 1 && t - last.t < 100) {
      last.t = t;
      last.done = done;
      return;
    }
    this.samples.push({ t, done });
    while (this.samples.length > 2 && this.samples[1]!.t <= t - this.windowMs) this.samples.shift();
  }
  /** Units per second, once the samples span at least half a second. */
  rate(): number | undefined {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.t - first.t < 500) return undefined;
    return (last.done - first.done) / ((last.t - first.t) / 1000);
  }
}

/** True at most once per `intervalMs`. */
export class Throttle {
  private last = Number.NEGATIVE_INFINITY;
  constructor(private readonly intervalMs: number) {}
  due(now: number): boolean {
    if (now - this.last < this.intervalMs) return false;
    this.last = now;
    return true;
  }
}

/** A task's numbers at one moment, as every renderer sees them. */
export interface TaskSnapshot {
  name: string;
  done: number;
  total?: number;
  unit: ProgressUnit;
  elapsedMs: number;
  rate?: number;
}

/** Which optional parts statsText includes (a narrow terminal drops them). */
export interface StatsParts {
  rate?: boolean;
  left?: boolean;
}

/** "45% 60.1/120.3 MiB 12.3 MiB/s 5s left" (the parts that are known). */
export function statsText(s: TaskSnapshot, want: StatsParts = { rate: true, left: true }): string {
  const parts: string[] = [];
  if (s.total) parts.push(`${percent(s.done, s.total)}%`, formatDoneTotal(s.done, s.total, s.unit));
  else if (s.done > 0) parts.push(formatAmount(s.done, s.unit));
  // Nothing counted and no total: a rate of "0 B/s" would say nothing the time does not.
  const rate = s.total || s.done > 0 ? formatRate(s.rate, s.unit) : undefined;
  if (rate && want.rate) parts.push(rate);
  const left = estimateSecondsLeft(s.done, s.total, s.rate);
  if (want.left)
    parts.push(left !== undefined ? `${formatDuration(left)} left` : formatDuration(s.elapsedMs / 1000));
  return parts.join(" ");
}

/**
 * The tty line of a running task, at most `width` characters: name, bar, stats. When space
 * runs short the bar goes first, then the rate, then the time, then the name is cut; the
 * percent and done/total stay as long as anything fits.
 */
export function renderRunning(s: TaskSnapshot, width: number, style: ProgressStyle): string {
  const lead = style.unicode ? "…" : "-";
  const nameLen = Array.from(s.name).length;
  const full = statsText(s);
  if (s.total) {
    const barLen = Math.min(30, width - (2 + nameLen + 1 + full.length + 3));
    if (barLen >= 8) {
      const fill = Math.round((Math.min(1, s.done / s.total) || 0) * barLen);
      const [on, off] = style.unicode ? ["█", "░"] : ["#", "-"];
      return `${lead} ${s.name} [${on.repeat(fill)}${off.repeat(barLen - fill)}] ${full}`;
    }
  }
  const shorter = [full, statsText(s, { left: true }), statsText(s, {})];
  for (const stats of shorter) {
    const nameRoom = width - (2 + 1 + stats.length);
    if (nameRoom >= Math.min(8, nameLen))
      return `${lead} ${fitWidth(s.name, nameRoom, style.unicode)} ${stats}`;
  }
  return fitWidth(`${lead} ${s.name} ${shorter[2]}`, width, style.unicode);
}

/** What a task did, for its last line: "120.3 MiB in 9.8s (12.3 MiB/s) — note". */
export function finishedText(
  s: TaskSnapshot,
  ok: boolean,
  note: string | undefined,
  unicode: boolean,
): string {
  const secs = s.elapsedMs / 1000;
  let body = "";
  if (ok) {
    if (s.done > 0 || s.total) body += `${formatAmount(s.done, s.unit)} `;
    body += `in ${secs.toFixed(1)}s`;
    if (s.done > 0 && secs >= 0.5) body += ` (${formatRate(s.done / secs, s.unit)})`;
  } else body += `after ${secs.toFixed(1)}s`;
  if (note) body += ` ${unicode ? "—" : "-"} ${note}`;
  return body;
}

/** The tty line that stays when a task ends: "✔ name 120.3 MiB in 9.8s (12.3 MiB/s) — note". */
export function renderFinished(
  s: TaskSnapshot,
  ok: boolean,
  note: string | undefined,
  width: number,
  style: ProgressStyle,
): string {
  const mark = style.unicode ? (ok ? "✔" : "✖") : ok ? "ok" : "FAILED";
  // Room goes to the numbers first, then the name, then the note (cut at the end).
  const numbers = finishedText(s, ok, undefined, style.unicode);
  const nameRoom = width - (mark.length + 2 + Array.from(numbers).length + (note ? 2 : 0));
  const name = fitWidth(s.name, Math.max(8, nameRoom), style.unicode);
  const body = finishedText(s, ok, note, style.unicode);
  const line = fitWidth(`${mark} ${name} ${body}`, width, style.unicode);
  if (!style.color) return line;
  return `\x1b[${ok ? "32" : "31"}m${mark}\x1b[0m${line.slice(mark.length)}`;
}

/** A plain (non-tty) progress line: "name: 45% 60.1/120.3 MiB 12.3 MiB/s 5s left". */
export function renderPlain(s: TaskSnapshot): string {
  return `${s.name}: ${statsText(s)}`;
}

/** The plain line of an ended task: "name: done 120.3 MiB in 9.8s (12.3 MiB/s)". */
export function renderPlainEnd(s: TaskSnapshot, ok: boolean, note: string | undefined): string {
  return `${s.name}: ${ok ? "done" : "failed"} ${finishedText(s, ok, note, false)}`;
}

// ---------------------------------------------------------------- task state

/** The numbers of one task, shared by every mode. */
class TaskState {
  done = 0;
  readonly started: number;
  readonly meter = new RateMeter();
  state: "run" | "ok" | "fail" = "run";
  note?: string;
  constructor(
    readonly name: string,
    public total: number | undefined,
    readonly unit: ProgressUnit,
    private readonly now: () => number,
  ) {
    this.started = now();
    this.meter.sample(this.started, 0);
  }
  set(done: number, total?: number): void {
    if (total !== undefined) this.total = total;
    this.done = done;
  }
  /** A finished task did all of its work: done is the total (a total that was short grows). */
  complete(): void {
    if (this.total === undefined) return;
    if (this.done > this.total) this.total = this.done;
    else this.done = this.total;
  }
  snapshot(): TaskSnapshot {
    const t = this.now();
    this.meter.sample(t, this.done);
    return {
      name: this.name,
      done: this.done,
      total: this.total,
      unit: this.unit,
      elapsedMs: t - this.started,
      rate: this.meter.rate(),
    };
  }
}

function taskOf(st: TaskState, hooks: { changed(): void; ended(): void }): Task {
  return {
    update(done, total) {
      if (st.state !== "run") return;
      st.set(done, total);
      hooks.changed();
    },
    finish(note) {
      if (st.state !== "run") return;
      st.complete();
      st.state = "ok";
      st.note = note;
      hooks.ended();
    },
    fail(reason) {
      if (st.state !== "run") return;
      st.state = "fail";
      st.note = reason;
      hooks.ended();
    },
  };
}

/** A transform that reports the running count of bytes passing through. */
export function countBytes(onBytes: (done: number) => void, start = 0): Transform {
  let done = start;
  return new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
      done += chunk.length;
      onBytes(done);
      cb(null, chunk);
    },
  });
}

/** A transform that counts the bytes passing through into `task`: `pipeline(src, meter(task), dest)`. */
export function meter(task: Task, start = 0): Transform {
  return countBytes((n) => task.update(n), start);
}

// ---------------------------------------------------------------- the modes

export function createProgress(
  mode: ProgressMode,
  out: Writable = process.stderr,
  opts: ProgressOptions = {},
): Progress {
  const now = opts.now ?? Date.now;
  if (mode === "silent") {
    const nop: Task = { update() {}, finish() {}, fail() {} };
    return { mode, task: () => nop, info() {} };
  }
  if (mode === "json") return jsonProgress(out, now, opts.jsonIntervalMs ?? 1000);
  if (mode === "plain") return plainProgress(out, now, opts.plainIntervalMs ?? 10_000);
  return ttyProgress(out as TtyStream, now, progressStyle(opts.env), opts.redrawMs ?? 100);
}

function jsonProgress(out: Writable, now: () => number, intervalMs: number): Progress {
  const emit = (o: Record<string, unknown>) =>
    out.write(`${JSON.stringify({ time: new Date(now()).toISOString(), ...o })}\n`);
  const numbers = (s: TaskSnapshot) => {
    const left = estimateSecondsLeft(s.done, s.total, s.rate);
    return {
      done: s.done,
      total: s.total,
      unit: s.unit,
      percent: s.total ? percent(s.done, s.total) : undefined,
      rate: s.rate === undefined ? undefined : Math.round(s.rate),
      eta: left === undefined ? undefined : Math.round(left),
    };
  };
  return {
    mode: "json",
    info: (message) => emit({ event: "info", message }),
    task(name, total, unit = "bytes") {
      const st = new TaskState(name, total, unit, now);
      const throttle = new Throttle(intervalMs);
      throttle.due(st.started);
      emit({ event: "start", task: name, total, unit });
      return taskOf(st, {
        changed() {
          if (throttle.due(now())) emit({ event: "progress", task: name, ...numbers(st.snapshot()) });
        },
        ended() {
          const s = st.snapshot();
          const seconds = Number((s.elapsedMs / 1000).toFixed(3));
          // The last event's rate is the task's average, not the last seconds'.
          s.rate = s.elapsedMs > 0 ? s.done / (s.elapsedMs / 1000) : undefined;
          if (st.state === "ok") {
            emit({ event: "done", task: name, ...numbers(s), seconds, note: st.note });
          } else emit({ event: "failed", task: name, ...numbers(s), seconds, reason: st.note });
        },
      });
    },
  };
}

function plainProgress(out: Writable, now: () => number, intervalMs: number): Progress {
  return {
    mode: "plain",
    info: (message) => out.write(`${message}\n`),
    task(name, total, unit = "bytes") {
      const st = new TaskState(name, total, unit, now);
      const throttle = new Throttle(intervalMs);
      throttle.due(st.started);
      out.write(`${name}: started${total ? ` (${formatAmount(total, unit)})` : ""}\n`);
      return taskOf(st, {
        changed() {
          if (throttle.due(now())) out.write(`${renderPlain(st.snapshot())}\n`);
        },
        ended() {
          out.write(`${renderPlainEnd(st.snapshot(), st.state === "ok", st.note)}\n`);
        },
      });
    },
  };
}

/** Redraws a block of lines, one per task, in place. */
function ttyProgress(out: TtyStream, now: () => number, style: ProgressStyle, redrawMs: number): Progress {
  const rows: TaskState[] = [];
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;
  // One column short of the edge: some terminals wrap as soon as the last column is written.
  const width = () => Math.max(20, (out.columns || 80) - 1);
  const line = (r: TaskState): string => {
    const s = r.snapshot();
    if (r.state === "run") return renderRunning(s, width(), style);
    return renderFinished(s, r.state === "ok", r.note, width(), style);
  };
  const draw = () => {
    if (drawn > 0) out.write(`\x1b[${drawn}A`);
    for (const r of rows) out.write(`\r\x1b[2K${line(r)}\n`);
    drawn = rows.length;
    // Finished rows scroll away once nothing above them is still running.
    while (rows.length > 0 && rows[0]!.state !== "run") {
      rows.shift();
      drawn--;
    }
    if (rows.length === 0 && timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };
  const ensureTimer = () => {
    if (!timer && redrawMs > 0) {
      timer = setInterval(draw, redrawMs);
      timer.unref();
    }
  };
  return {
    mode: "tty",
    info(message) {
      if (drawn > 0) out.write(`\x1b[${drawn}A\x1b[0J`);
      drawn = 0;
      out.write(`${message}\n`);
      draw();
    },
    task(name, total, unit = "bytes") {
      const r = new TaskState(name, total, unit, now);
      rows.push(r);
      ensureTimer();
      return taskOf(r, { changed() {}, ended: draw });
    },
  };
}
