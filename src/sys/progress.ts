import type { Writable } from "node:stream";

/**
 * Progress for long operations. On a TTY: one redrawn line per running task with a bar.
 * Elsewhere: plain lines at start, every 10 %, and end. With --json: one JSON object per event.
 */
export type ProgressMode = "tty" | "plain" | "json" | "silent";

export interface Task {
  /** Set the amount done (same unit as total). */
  update(done: number, total?: number): void;
  /** Mark finished, with an optional short result note. */
  finish(note?: string): void;
  /** Mark failed. */
  fail(reason: string): void;
}

export interface Progress {
  readonly mode: ProgressMode;
  task(name: string, total?: number, unit?: "bytes" | "items"): Task;
  /** An informational line (kept out of the way of bars). */
  info(message: string): void;
}

export function progressMode(
  opts: { json?: boolean; quiet?: boolean },
  stream: Writable = process.stderr,
): ProgressMode {
  if (opts.quiet) return "silent";
  if (opts.json) return "json";
  return (stream as Writable & { isTTY?: boolean }).isTTY ? "tty" : "plain";
}

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

function amount(n: number, unit: "bytes" | "items"): string {
  return unit === "bytes" ? formatBytes(n) : String(n);
}

export function createProgress(mode: ProgressMode, out: Writable = process.stderr): Progress {
  const now = () => Date.now();
  if (mode === "silent") {
    const nop: Task = { update() {}, finish() {}, fail() {} };
    return { mode, task: () => nop, info() {} };
  }
  if (mode === "json") {
    const emit = (o: Record<string, unknown>) =>
      out.write(`${JSON.stringify({ time: new Date().toISOString(), ...o })}\n`);
    return {
      mode,
      info: (message) => emit({ event: "info", message }),
      task(name, total, unit = "bytes") {
        emit({ event: "start", task: name, total, unit });
        let lastEmit = 0;
        return {
          update(done, t) {
            if (t !== undefined) total = t;
            if (now() - lastEmit < 500) return;
            lastEmit = now();
            emit({ event: "progress", task: name, done, total, unit });
          },
          finish: (note) => emit({ event: "done", task: name, note }),
          fail: (reason) => emit({ event: "failed", task: name, reason }),
        };
      },
    };
  }
  if (mode === "plain") {
    return {
      mode,
      info: (message) => out.write(`${message}\n`),
      task(name, total, unit = "bytes") {
        const started = now();
        out.write(`${name}: started${total ? ` (${amount(total, unit)})` : ""}\n`);
        let lastDecile = 0;
        return {
          update(done, t) {
            if (t !== undefined) total = t;
            if (!total) return;
            const decile = Math.floor((done / total) * 10);
            if (decile > lastDecile && decile < 10) {
              lastDecile = decile;
              out.write(`${name}: ${decile * 10}%\n`);
            }
          },
          finish: (note) =>
            out.write(
              `${name}: done in ${((now() - started) / 1000).toFixed(1)}s${note ? ` — ${note}` : ""}\n`,
            ),
          fail: (reason) => out.write(`${name}: failed — ${reason}\n`),
        };
      },
    };
  }
  return ttyProgress(out);
}

/** Redraws a block of lines, one per task, in place. */
function ttyProgress(out: Writable): Progress {
  interface Row {
    name: string;
    done: number;
    total?: number;
    unit: "bytes" | "items";
    state: "run" | "ok" | "fail";
    note?: string;
    started: number;
  }
  const rows: Row[] = [];
  let drawn = 0;
  let timer: NodeJS.Timeout | undefined;
  const width = () => Math.max(40, Math.min(100, (out as Writable & { columns?: number }).columns ?? 80));
  const line = (r: Row): string => {
    const secs = ((Date.now() - r.started) / 1000).toFixed(1);
    if (r.state !== "run") {
      return `${r.state === "ok" ? "✔" : "✖"} ${r.name} ${secs}s${r.note ? ` — ${r.note}` : ""}`;
    }
    if (!r.total) return `… ${r.name} ${amount(r.done, r.unit)} ${secs}s`;
    const frac = Math.min(1, r.done / r.total);
    const barLen = Math.max(10, width() - r.name.length - 40);
    const fill = Math.round(frac * barLen);
    return `… ${r.name} [${"█".repeat(fill)}${"░".repeat(barLen - fill)}] ${amount(r.done, r.unit)}/${amount(r.total, r.unit)}`;
  };
  const draw = () => {
    if (drawn > 0) out.write(`\x1b[${drawn}A`);
    for (const r of rows) out.write(`\x1b[2K${line(r).slice(0, width())}\n`);
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
    if (!timer) {
      timer = setInterval(draw, 100);
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
      const r: Row = { name, done: 0, total, unit, state: "run", started: Date.now() };
      rows.push(r);
      ensureTimer();
      return {
        update(done, t) {
          r.done = done;
          if (t !== undefined) r.total = t;
        },
        finish(note) {
          r.state = "ok";
          r.note = note;
          draw();
        },
        fail(reason) {
          r.state = "fail";
          r.note = reason;
          draw();
        },
      };
    },
  };
}
