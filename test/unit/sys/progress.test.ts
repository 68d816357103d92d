import assert from "node:assert/strict";
import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { test } from "node:test";
import {
  createProgress,
  estimateSecondsLeft,
  fitWidth,
  formatBytes,
  formatDoneTotal,
  formatDuration,
  formatRate,
  meter,
  percent,
  progressMode,
  progressStyle,
  RateMeter,
  renderFinished,
  renderPlainEnd,
  renderRunning,
  statsText,
  type TaskSnapshot,
  Throttle,
} from "../../../src/sys/progress.js";

const MiB = 1024 * 1024;
const UTF8 = { unicode: true, color: false };
const ASCII = { unicode: false, color: false };

/** A stream that keeps what was written; looks like a terminal of `columns` when asked. */
function sink(tty?: { columns: number }): Writable & { text(): string } {
  const chunks: string[] = [];
  const w = new Writable({
    write(c, _e, cb) {
      chunks.push(c.toString());
      cb();
    },
  }) as Writable & { text(): string; isTTY?: boolean; columns?: number };
  w.text = () => chunks.join("");
  if (tty) {
    w.isTTY = true;
    w.columns = tty.columns;
  }
  return w;
}

/** A clock the test moves by hand. */
function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const snap = (over: Partial<TaskSnapshot> = {}): TaskSnapshot => ({
  name: "layer 1/3 sha256:acfeed36f0a6",
  done: 60 * MiB,
  total: 120 * MiB,
  unit: "bytes",
  elapsedMs: 5000,
  rate: 12 * MiB,
  ...over,
});

test("amounts, rates and durations read like skopeo's", () => {
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatDoneTotal(60 * MiB, 120.3 * MiB, "bytes"), "60.0/120.3 MiB");
  // One unit for both numbers: the total's.
  assert.equal(formatDoneTotal(512 * 1024, 2 * 1024 * MiB, "bytes"), "0.0/2.0 GiB");
  assert.equal(formatDoneTotal(700, 900, "bytes"), "700/900 B");
  assert.equal(formatDoneTotal(3, 17, "items"), "3/17");
  assert.equal(formatRate(12.3 * MiB, "bytes"), "12.3 MiB/s");
  assert.equal(formatRate(450, "items"), "450 items/s");
  assert.equal(formatRate(undefined, "bytes"), undefined);
  assert.equal(formatDuration(42.4), "42s");
  assert.equal(formatDuration(185), "3m05s");
  assert.equal(formatDuration(7620), "2h07m");
  assert.equal(percent(1, 3), 33);
  assert.equal(percent(5, 3), 100);
});

test("time left is what remains at the current rate, unknown without a rate or total", () => {
  assert.equal(estimateSecondsLeft(60, 120, 12), 5);
  assert.equal(estimateSecondsLeft(130, 120, 12), 0);
  assert.equal(estimateSecondsLeft(60, undefined, 12), undefined);
  assert.equal(estimateSecondsLeft(60, 120, undefined), undefined);
  assert.equal(estimateSecondsLeft(60, 120, 0), undefined);
  assert.equal(statsText(snap()), "50% 60.0/120.0 MiB 12.0 MiB/s 5s left");
  // No rate yet: elapsed time instead of a guess.
  assert.equal(statsText(snap({ rate: undefined })), "50% 60.0/120.0 MiB 5s");
});

test("the rate follows the last seconds: a stall brings it to zero, a short span gives none", () => {
  const m = new RateMeter(5000);
  m.sample(0, 0);
  m.sample(300, 3 * MiB);
  assert.equal(m.rate(), undefined, "less than half a second of samples");
  for (let t = 1000; t <= 10_000; t += 1000) m.sample(t, (t / 1000) * 10 * MiB);
  assert.equal(Math.round(m.rate()! / MiB), 10);
  // Stalled for six seconds: the window holds only the stall.
  for (let t = 11_000; t <= 16_000; t += 1000) m.sample(t, 100 * MiB);
  assert.equal(m.rate(), 0);
  // Samples closer than 100 ms are merged, not stacked.
  const n = new RateMeter();
  n.sample(0, 0);
  for (let t = 1; t < 100; t++) n.sample(t, t);
  n.sample(1000, 1000);
  assert.equal(n.rate(), 1000);
});

test("a throttle lets one event through per interval", () => {
  const th = new Throttle(1000);
  assert.equal(th.due(0), true);
  assert.equal(th.due(999), false);
  assert.equal(th.due(1000), true);
  assert.equal(th.due(1500), false);
});

test("a running line has bar, percent, done/total, rate and time left, and fits any width", () => {
  const line = renderRunning(snap(), 100, UTF8);
  assert.match(
    line,
    /^… layer 1\/3 sha256:acfeed36f0a6 \[█+░+\] 50% 60\.0\/120\.0 MiB 12\.0 MiB\/s 5s left$/,
  );
  for (let w = 1; w <= 160; w++) {
    for (const style of [UTF8, ASCII]) {
      const l = renderRunning(snap({ name: `a long task name ${"x".repeat(40)}` }), w, style);
      assert.ok(Array.from(l).length <= w, `width ${w}: ${l}`);
    }
  }
  // Narrow: the bar goes first, the numbers stay.
  const narrow = renderRunning(snap(), 50, UTF8);
  assert.doesNotMatch(narrow, /\[/);
  assert.match(narrow, /50% 60\.0\/120\.0 MiB 12\.0 MiB\/s 5s left$/);
  // Narrower still: the name is cut, marked.
  const cut = renderRunning(snap(), 48, UTF8);
  assert.match(cut, /^… layer 1… 50% /);
});

test("a finished line keeps its numbers, then the name; the note is cut first", () => {
  const name = "check oci:/root/.cache/kairos-ts/base/debian-bookworm/oci:latest";
  const s = snap({ name, done: 120 * MiB });
  const note = "base image (debian, kernel 6.1.0-50-amd64): applying kairos init on the fly";
  const wide = renderFinished(s, true, note, 200, UTF8);
  assert.equal(wide, `✔ ${name} 120.0 MiB in 5.0s (24.0 MiB/s) — ${note}`);
  const l = renderFinished(s, true, note, 80, UTF8);
  assert.equal(Array.from(l).length, 80);
  assert.match(
    l,
    /^✔ check oci:\/root\/\.cache\/kairos-ts\/base\/debian\S*… 120\.0 MiB in 5\.0s \(24\.0 MiB\/s\) …$/,
  );
  // Nothing counted and no total: the elapsed time, not "0 B/s".
  assert.equal(statsText(snap({ total: undefined, done: 0, rate: 0 })), "5s");
});

test("outside a UTF-8 locale the bar and the marks are ASCII", () => {
  const line = renderRunning(snap(), 100, ASCII);
  assert.match(line, /^- layer 1\/3 sha256:acfeed36f0a6 \[#+-+\] 50% /);
  assert.match(line, /^[\x20-\x7e]+$/);
  const ok = renderFinished(snap({ done: 120 * MiB }), true, "note", 100, ASCII);
  assert.match(ok, /^ok layer 1\/3 sha256:acfeed36f0a6 120\.0 MiB in 5\.0s \(24\.0 MiB\/s\) - note$/);
  assert.match(renderFinished(snap(), false, "boom", 100, ASCII), /^FAILED layer .* after 5\.0s - boom$/);
  assert.equal(fitWidth("abcdef", 4, false), "abc.");
  assert.equal(fitWidth("abcdef", 4, true), "abc…");
});

test("locale and NO_COLOR decide the style; --quiet, --json and the stream decide the mode", () => {
  assert.deepEqual(progressStyle({ LANG: "en_US.UTF-8" }), { unicode: true, color: true });
  assert.deepEqual(progressStyle({ LANG: "C" }), { unicode: false, color: true });
  assert.deepEqual(progressStyle({}), { unicode: false, color: true });
  // LC_ALL wins over LANG, LC_CTYPE in between.
  assert.equal(progressStyle({ LC_ALL: "C", LANG: "en_US.UTF-8" }).unicode, false);
  assert.equal(progressStyle({ LC_CTYPE: "de_DE.utf8", LANG: "C" }).unicode, true);
  assert.equal(progressStyle({ LANG: "C.UTF-8", NO_COLOR: "1" }).color, false);
  assert.equal(progressStyle({ LANG: "C.UTF-8", TERM: "dumb" }).color, false);
  const green = renderFinished(snap(), true, undefined, 100, { unicode: true, color: true });
  assert.match(green, /^\x1b\[32m✔\x1b\[0m layer/);
  assert.doesNotMatch(renderFinished(snap(), true, undefined, 100, UTF8), /\x1b/);

  const tty = sink({ columns: 80 });
  assert.equal(progressMode({}, tty, {}), "tty");
  assert.equal(progressMode({}, tty, { TERM: "dumb" }), "plain");
  assert.equal(progressMode({}, sink(), {}), "plain");
  assert.equal(progressMode({ json: true }, tty, {}), "json");
  assert.equal(progressMode({ quiet: true, json: true }, tty, {}), "silent");
});

test("--json: start with total, progress at most once a second, the last event at done == total", () => {
  const c = clock();
  const out = sink();
  const p = createProgress("json", out, { now: c.now });
  const total = 100 * MiB;
  const t = p.task("layer 1/2 sha256:cb7e7db73e4b", total, "bytes");
  // 100 updates 50 ms apart: 5 s of work.
  for (let i = 1; i <= 100; i++) {
    c.advance(50);
    t.update(i * MiB);
  }
  t.finish("ok");
  const events = out
    .text()
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  assert.equal(events[0].event, "start");
  assert.equal(events[0].total, total);
  const progress = events.filter((e) => e.event === "progress");
  assert.ok(progress.length >= 4 && progress.length <= 5, `${progress.length} progress events`);
  for (const e of progress) {
    assert.equal(e.total, total);
    assert.ok(e.done > 0 && e.done <= total);
    assert.equal(e.percent, Math.floor((e.done / total) * 100));
  }
  // Done values only grow; later ones carry a rate of ~20 MiB/s and a time left.
  assert.deepEqual(
    progress.map((e) => e.done),
    [...progress.map((e) => e.done)].sort((a, b) => a - b),
  );
  const late = progress[progress.length - 1];
  assert.equal(Math.round(late.rate / MiB), 20);
  assert.equal(typeof late.eta, "number");
  const last = events[events.length - 1];
  assert.equal(last.event, "done");
  assert.equal(last.done, total);
  assert.equal(last.total, total);
  assert.equal(last.percent, 100);
  assert.equal(last.note, "ok");
  assert.equal(last.seconds, 5);

  // A task whose work ended short of its total still ends at done == total (finish means all).
  const t2 = p.task("short", 10, "items");
  t2.update(9);
  t2.finish();
  const end = JSON.parse(out.text().trim().split("\n").pop()!);
  assert.deepEqual([end.done, end.total], [10, 10]);
  // Failure: its own event with the numbers reached; later calls change nothing.
  const t3 = p.task("fails", 10, "items");
  t3.update(4);
  t3.fail("boom");
  t3.finish();
  t3.update(9);
  const tail = out
    .text()
    .trim()
    .split("\n")
    .slice(-1)
    .map((l) => JSON.parse(l))[0];
  assert.deepEqual([tail.event, tail.done, tail.total, tail.reason], ["failed", 4, 10, "boom"]);
});

test("plain output: a line at start, one per 10 s at most while running, one at the end", () => {
  const c = clock();
  const out = sink();
  const p = createProgress("plain", out, { now: c.now });
  const t = p.task("squashfs from oci:base", 600 * MiB, "bytes");
  // 60 s of updates every 100 ms (600 updates), as a slow CI job would see them.
  for (let i = 1; i <= 600; i++) {
    c.advance(100);
    t.update(i * MiB);
  }
  t.finish("wrote 630 MiB");
  const lines = out.text().trim().split("\n");
  assert.equal(lines[0], "squashfs from oci:base: started (600.0 MiB)");
  assert.ok(lines.length <= 8, `${lines.length} lines:\n${lines.join("\n")}`);
  assert.ok(lines.length >= 6, `${lines.length} lines`);
  assert.match(lines[1]!, /^squashfs from oci:base: 16% 100\.0\/600\.0 MiB 10\.0 MiB\/s 50s left$/);
  assert.equal(lines.at(-1), "squashfs from oci:base: done 600.0 MiB in 60.0s (10.0 MiB/s) - wrote 630 MiB");
  assert.doesNotMatch(out.text(), /\x1b|\r/);
  assert.equal(
    renderPlainEnd(snap(), false, "no space"),
    "layer 1/3 sha256:acfeed36f0a6: failed after 5.0s - no space",
  );
});

test("tty output: lines cut to the terminal width, never wrapped; finished rows stay; info in between", () => {
  const c = clock();
  const out = sink({ columns: 40 });
  const p = createProgress("tty", out, { now: c.now, env: { LANG: "C", NO_COLOR: "1" }, redrawMs: 0 });
  const a = p.task(`layer 1/2 ${"sha256:".padEnd(60, "a")}`, 100, "items");
  const b = p.task("layer 2/2", 50, "items");
  c.advance(2000);
  a.update(40);
  b.update(10);
  p.info("note: something to say");
  c.advance(2000);
  a.finish();
  b.fail("bad blob");
  const text = out.text();
  // Every line drawn, with its escape sequences removed, fits in 39 columns.
  const plainText = text.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").replace(/\r/g, "");
  for (const line of plainText.split("\n")) assert.ok(line.length <= 39, `too wide: ${JSON.stringify(line)}`);
  // Too narrow for the bar and the rate: name cut, numbers kept.
  assert.match(plainText, /^- layer 1\/2 sha256:\. 40% 40\/100 3s left$/m);
  assert.match(plainText, /^- layer 2\/2 20% 10\/50 8s left$/m);
  assert.match(plainText, /^note: something to say$/m);
  assert.match(plainText, /^ok layer 1\/2 [^ ]*\. 100 in 4\.0s \(25 items\/s\)$/m);
  assert.match(plainText, /^FAILED layer 2\/2 after 4\.0s - bad blob$/m);
  assert.match(text, /^[\x00-\x7f]*$/, "ASCII only outside a UTF-8 locale");
  assert.doesNotMatch(text, /\x1b\[3[0-9]m/, "no colour with NO_COLOR");
});

test("--quiet prints nothing at all", () => {
  const out = sink({ columns: 80 });
  const p = createProgress(progressMode({ quiet: true }, out, {}), out);
  const t = p.task("x", 10);
  t.update(5);
  t.finish();
  p.info("hello");
  p.task("y").fail("bad");
  assert.equal(out.text(), "");
});

test("meter() counts the bytes of a stream into a task", async () => {
  const seen: number[] = [];
  const task = { update: (n: number) => seen.push(n), finish() {}, fail() {} };
  const chunks = [Buffer.alloc(3), Buffer.alloc(5), Buffer.alloc(7)];
  await pipeline(Readable.from(chunks), meter(task), sink());
  assert.deepEqual(seen, [3, 8, 15]);
});
