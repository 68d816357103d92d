import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { ensureDefaultBase } from "../../src/base/index.js";
import { openImage } from "../../src/oci/index.js";
import { tempDir } from "../helpers/tmp.js";

// What a user sees while `kairos image unpack` writes the default base (~245 MiB compressed,
// two layers): in a real terminal (tmux, its screen captured as it runs), under `script` in a
// narrow ASCII terminal, with --json, in a log file, and with --quiet.

const KAIROS = join(import.meta.dirname, "../../bin/kairos");
const MiB = 1024 * 1024;
const exec = promisify(execFile);

async function baseImage() {
  const base = await ensureDefaultBase();
  const img = await openImage(base.ref);
  try {
    return { ref: base.ref, sizes: (await img.layers()).map((l) => l.size) };
  } finally {
    await img.close();
  }
}

const shq = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

test("progress of a real unpack, on a terminal and off it", { timeout: 10 * 60_000 }, async (t) => {
  const { ref, sizes } = await baseImage();
  assert.ok(sizes[0]! > 100 * MiB, `the first layer is big enough to watch (${sizes[0]} bytes)`);
  const big = (sizes[0]! / MiB).toFixed(1);
  const dir = await tempDir(t, "kairos-progress-");
  // bin/kairos rebuilds its bundle when sources changed: do that before anything is timed.
  await exec(KAIROS, ["--version"]);

  await t.test("tmux screen: done/total moves while the big layer is written", async () => {
    const sock = join(dir, "tmux.sock");
    const marker = join(dir, "tmux.exit");
    const cmd = `${shq(KAIROS)} image unpack ${shq(ref)} ${shq(join(dir, "tty"))}; echo $? > ${shq(marker)}; sleep 600`;
    const tmux = (...args: string[]) => exec("tmux", ["-S", sock, "-f", "/dev/null", ...args]);
    await tmux(
      "new-session",
      "-d",
      "-x",
      "100",
      "-y",
      "30",
      "-e",
      "LANG=C.UTF-8",
      "-e",
      "LC_ALL=",
      "-e",
      "NO_COLOR=",
      "sh",
      "-c",
      cmd,
    );
    try {
      const screens: string[] = [];
      const deadline = Date.now() + 5 * 60_000;
      let exit: string | undefined;
      while (exit === undefined && Date.now() < deadline) {
        screens.push((await tmux("capture-pane", "-p", "-t", "0")).stdout);
        exit = await readFile(marker, "utf8").catch(() => undefined);
        await sleep(200);
      }
      screens.push((await tmux("capture-pane", "-p", "-t", "0")).stdout);
      assert.equal(exit?.trim(), "0", `unpack exit status; last screen:\n${screens.at(-1)}`);
      // Every screen: a "layer 1/2" line with a bar, percent and done/total in MiB.
      const bar = new RegExp(
        `^… layer 1/2 sha256:[0-9a-f]{12} \\[[█░]+\\] (\\d+)% ([\\d.]+)/${big} MiB`,
        "m",
      );
      const seen: number[] = [];
      for (const s of screens) {
        const m = bar.exec(s);
        if (m) seen.push(Number(m[2]));
        // Progress lines stop one column short of the edge (the command's own result line on
        // stdout may wrap; it is not ours to cut).
        for (const line of s.split("\n").filter((l) => /^[…✔✖] /.test(l))) {
          assert.ok([...line].length <= 99, `progress line as wide as the pane: ${line}`);
        }
      }
      const distinct = [...new Set(seen)];
      assert.ok(distinct.length >= 3, `done/total moved: ${distinct.join(", ")} of ${big} MiB`);
      assert.deepEqual(
        seen,
        [...seen].sort((a, b) => a - b),
        "done only grows",
      );
      assert.ok(distinct[0]! < Number(big) / 2, `first seen early: ${distinct[0]} MiB`);
      // Rate and time left show once the layer has run a moment.
      assert.ok(
        screens.some((s) => new RegExp(`/${big} MiB [\\d.]+ MiB/s \\d+s left`).test(s)),
        "rate and time left",
      );
      const last = screens.at(-1)!;
      assert.match(
        last,
        new RegExp(`^✔ layer 1/2 sha256:[0-9a-f]{12} ${big} MiB in [\\d.]+s \\([\\d.]+ MiB/s\\)`, "m"),
      );
      assert.match(last, /^✔ layer 2\/2 /m);
      assert.match(last, /^unpacked /m);
    } finally {
      await tmux("kill-server").catch(() => {});
    }
  });

  await t.test("script, 40 columns, LANG=C, NO_COLOR: ASCII, no colour, lines cut not wrapped", async () => {
    const log = join(dir, "script.log");
    const cmd = `stty cols 40 rows 20; ${shq(KAIROS)} image unpack ${shq(ref)} ${shq(join(dir, "narrow"))}`;
    const p = spawn("script", ["-qfec", cmd, log], {
      env: { ...process.env, LANG: "C", LC_ALL: "", LC_CTYPE: "", NO_COLOR: "1", TERM: "xterm" },
      stdio: ["ignore", "ignore", "inherit"],
    });
    const code = await new Promise<number | null>((r) => p.on("close", r));
    assert.equal(code, 0);
    const raw = await readFile(log);
    const text = raw.toString("latin1");
    assert.ok(
      raw.every((b) => b < 0x80),
      "ASCII only",
    );
    assert.doesNotMatch(text, /\x1b\[3\dm/, "no colour codes");
    // What the terminal shows of each drawn line: escapes removed, split at \r and \n.
    const drawn = text
      .replace(/\x1b\[[0-9;]*[A-Za-z]/g, "")
      .split(/\r\n|\r|\n/)
      // script's own header and trailer in the log
      .filter((l) => l && !l.startsWith("Script "));
    const bars = drawn.filter((l) => l.startsWith("- layer 1/2"));
    assert.ok(bars.length >= 3, `${bars.length} redraws of the running line`);
    for (const l of drawn.filter((x) => !x.startsWith("unpacked "))) {
      assert.ok(l.length <= 39, `cut to 39 columns: ${JSON.stringify(l)}`);
    }
    assert.ok(
      bars.some((l) => new RegExp(`\\d+% [\\d.]+/${big} MiB`).test(l)),
      `percent and done/total kept when narrow: ${bars.at(-1)}`,
    );
    assert.ok(
      drawn.some((l) => /^ok layer 2\/2 /.test(l)) && drawn.some((l) => /^ok layer 1/.test(l)),
      "ASCII end mark",
    );
  });

  await t.test("--json: every event carries total, and each task ends at done == total", async () => {
    const { stderr } = await exec(KAIROS, ["--json", "image", "unpack", ref, join(dir, "json")]);
    const events = stderr
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const tasks = new Map<string, Record<string, unknown>[]>();
    for (const e of events) if (e.task) tasks.set(e.task, [...(tasks.get(e.task) ?? []), e]);
    assert.equal(tasks.size, 2, [...tasks.keys()].join(", "));
    for (const [i, [name, evs]] of [...tasks].entries()) {
      assert.equal(evs[0]!.event, "start", name);
      for (const e of evs) assert.equal(e.total, sizes[i], `${name} ${e.event} carries the layer size`);
      const last = evs.at(-1)!;
      assert.equal(last.event, "done", name);
      assert.equal(last.done, last.total, `${name} ends at done == total`);
      const dones = evs.filter((e) => e.event === "progress").map((e) => e.done as number);
      assert.deepEqual(
        dones,
        [...dones].sort((a, b) => a - b),
      );
    }
    const bigLayer = [...tasks.values()][0]!;
    assert.ok(bigLayer.filter((e) => e.event === "progress").length >= 2, "progress events on the way");
  });

  await t.test("not a terminal: a few plain lines, no redraws; --quiet: nothing", async () => {
    const plain = await exec(KAIROS, ["image", "unpack", ref, join(dir, "plain")]);
    const lines = plain.stderr.trim().split("\n");
    assert.doesNotMatch(plain.stderr, /\x1b|\r/);
    assert.match(lines[0]!, new RegExp(`^layer 1/2 sha256:[0-9a-f]{12}: started \\(${big} MiB\\)$`));
    assert.ok(lines.length <= 8, `a steady low rate of lines:\n${plain.stderr}`);
    assert.match(plain.stderr, new RegExp(`^layer 1/2 sha256:[0-9a-f]{12}: done ${big} MiB in `, "m"));
    const quiet = await exec(KAIROS, ["--quiet", "image", "unpack", ref, join(dir, "quiet")]);
    assert.equal(quiet.stderr, "");
  });
});
