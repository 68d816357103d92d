import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { verdictFor } from "../../../src/cli/commands/config.js";
import { collectConfig, YAML_LIMITS } from "../../../src/config/index.js";
import { FIXTURES, fixture } from "./helpers.js";

/**
 * The garbage the issue was filed with: mutations of real configs (deleted and doubled
 * characters, re-indented lines, tabs, random and invalid UTF-8 bytes) mixed with hostile
 * shapes (5 000-deep flow sequences, alias chains, alias bombs, huge scalars), validated many
 * per process. No input may crash, show a raw JavaScript error, or be refused without a
 * file:line:col inside the file.
 */

function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The fixtures and the corpus of Kairos-shaped configs (docs reference, e2e asset, templates…). */
const SEEDS = [
  ...["reference.yaml", "stages.yaml", "cloudinit.yaml", "invalid.yaml", "legacy-header.yaml"].map(fixture),
  ...readdirSync(join(FIXTURES, "corpus"))
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => readFileSync(join(FIXTURES, "corpus", f), "utf8")),
];

/** Engine text that must never reach a user, whatever the input. */
const RAW_JS =
  /Maximum call stack|RegExpCompiler|Allocation failed|out of memory|RangeError|TypeError|ReferenceError|SyntaxError|is not a function|Cannot read prop|\[object |Excessive alias|undefined/;

type Mutation = (s: string, r: () => number) => string;
const pick = <T>(xs: readonly T[], r: () => number): T => xs[Math.floor(r() * xs.length)]!;
const at = (s: string, r: () => number) => Math.floor(r() * (s.length + 1));

const MUTATIONS: Mutation[] = [
  // delete a run of characters
  (s, r) => {
    const p = at(s, r);
    return s.slice(0, p) + s.slice(p + 1 + Math.floor(r() * 6));
  },
  // double a character
  (s, r) => {
    const p = at(s, r);
    return s.slice(0, p) + s.slice(p, p + 1) + s.slice(p);
  },
  // re-indent one line by -2..+3 spaces
  (s, r) => {
    const lines = s.split("\n");
    const i = Math.floor(r() * lines.length);
    const d = Math.floor(r() * 6) - 2;
    lines[i] = d >= 0 ? " ".repeat(d) + lines[i] : lines[i]!.replace(new RegExp(`^ {0,${-d}}`), "");
    return lines.join("\n");
  },
  // a tab where indentation was
  (s, r) => {
    const lines = s.split("\n");
    const i = Math.floor(r() * lines.length);
    lines[i] = lines[i]!.replace(/^ {1,2}/, "\t");
    return lines.join("\n");
  },
  // random bytes, including invalid UTF-8, decoded the way files are read
  (s, r) => {
    const p = at(s, r);
    const bytes = Buffer.from(Array.from({ length: 1 + Math.floor(r() * 6) }, () => Math.floor(r() * 256)));
    return s.slice(0, p) + bytes.toString("utf8") + s.slice(p);
  },
  // YAML punctuation dropped somewhere
  (s, r) => {
    const p = at(s, r);
    return (
      s.slice(0, p) +
      pick(
        [
          ": ",
          "- ",
          "[",
          "]",
          "{",
          "}",
          '"',
          "'",
          "&a ",
          "*a",
          "|",
          "---\n",
          "? ",
          "{{",
          "}}",
          "{{ nope }}",
          "(?=",
        ],
        r,
      ) +
      s.slice(p)
    );
  },
];

function mutated(r: () => number): string {
  let s = pick(SEEDS, r);
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) s = pick(MUTATIONS, r)(s, r);
  return s;
}

/**
 * Hostile shapes, each small enough to build quickly but past one of the limits. The last one
 * (too many values) costs ~0.5 s to refuse, so the random pick leaves it out and the batch test
 * includes it once.
 */
function hostile(r: () => number, k = Math.floor(r() * 7)): string {
  const head = "#cloud-config\n";
  switch (k) {
    case 0:
      return `${head}a: ${"[".repeat(5000)}${"]".repeat(r() < 0.5 ? 5000 : 0)}\n`;
    case 1:
      return `${head}a: ${"{b: ".repeat(3000)}1${"}".repeat(3000)}\n`;
    case 2: {
      let t = `${head}a0: &a0 [x]\n`;
      for (let i = 1; i < 400; i++) t += `a${i}: &a${i} [*a${i - 1}]\n`;
      return t;
    }
    case 3: {
      let t = `${head}a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n`;
      for (let i = 1; i < 9; i++)
        t += `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(", ")}]\n`;
      return t;
    }
    case 4:
      return `${head}hostname: ${"x".repeat(YAML_LIMITS.scalarBytes + 10)}\n`;
    case 5:
      return `${head}${Array.from({ length: 300 }, (_, i) => `${" ".repeat(i)}k${i}:`).join("\n")} 1\n`;
    case 6:
      return `${head}a: &a [*a]\n`;
    default:
      return `${head}stages:\n  boot:\n  - commands: [${"ls, ".repeat(YAML_LIMITS.nodes + 10)}]\n`;
  }
}

function checkVerdict(v: ReturnType<typeof verdictFor>, text: string, label: string): void {
  const lines = text.split("\n").length;
  for (const e of v.errors) {
    assert.doesNotMatch(e.message, RAW_JS, `${label}: raw engine text in ${e.message.slice(0, 300)}`);
    assert.ok(e.message.startsWith(`${v.file}:${e.line}:${e.col}: `), `${label}: ${e.message.slice(0, 300)}`);
    assert.ok(e.line >= 1 && e.line <= lines + 1, `${label}: line ${e.line} of ${lines}`);
    assert.ok(e.col >= 1, `${label}: col ${e.col}`);
  }
  for (const w of v.warnings) assert.doesNotMatch(w.message, RAW_JS, label);
}

describe("fuzz: garbage configs never crash the validator", () => {
  it("300 mutated real configs and hostile shapes, ten per batch, as `kairos validate` reads them", () => {
    const r = rng(15);
    let refused = 0;
    let hostileCount = 0;
    // CPU time, not wall time: the bound catches a blow-up (an exponential path), and wall time
    // on a loaded 2-core host (the suite beside QEMU guests) varied 6-25 s for the same work.
    const cpu0 = process.cpuUsage();
    for (let batch = 0; batch < 30; batch++) {
      for (let i = 0; i < 10; i++) {
        const isHostile = i === 0 || i === 5;
        const text = isHostile ? hostile(r, batch === 0 && i === 0 ? 7 : undefined) : mutated(r);
        if (isHostile) hostileCount++;
        const label = `batch ${batch} file ${i}`;
        let v: ReturnType<typeof verdictFor>;
        try {
          v = verdictFor(text, `f${i}.yaml`);
        } catch (err) {
          assert.fail(
            `${label}: threw ${String((err as Error).stack)}\n--- input (head) ---\n${text.slice(0, 400)}`,
          );
        }
        checkVerdict(v, text, label);
        if (!v.valid) refused++;
        if (isHostile) assert.equal(v.valid, false, `${label}: a hostile shape must be refused`);
      }
    }
    assert.ok(refused >= hostileCount, "every hostile shape was refused");
    const cpu = process.cpuUsage(cpu0);
    const cpuMs = (cpu.user + cpu.system) / 1000;
    assert.ok(cpuMs < 20_000, `took ${cpuMs.toFixed(0)} ms of CPU`);
  });

  it("`kairos validate` with ten garbage files in one process exits 1 with a line per refusal, never aborts", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kairos-fuzzcli-"));
    try {
      const r = rng(134);
      const files = Array.from({ length: 10 }, (_, i) => {
        const f = join(dir, `f${i}.yaml`);
        writeFileSync(f, i < 7 ? hostile(r, i) : mutated(r));
        return f;
      });
      const out = await new Promise<{ code: number | null; signal: string | null; stderr: string }>(
        (resolve) => {
          const child = spawn(join(import.meta.dirname, "../../../bin/kairos"), ["validate", ...files], {
            stdio: ["ignore", "ignore", "pipe"],
          });
          let stderr = "";
          child.stderr.on("data", (c: Buffer) => {
            stderr += c.toString();
          });
          child.on("exit", (code, signal) => resolve({ code, signal, stderr }));
        },
      );
      assert.equal(out.signal, null, out.stderr);
      assert.equal(out.code, 1, out.stderr);
      assert.doesNotMatch(out.stderr, RAW_JS);
      for (let i = 0; i < 7; i++)
        assert.match(out.stderr, new RegExp(`error: ${files[i]}:\\d+:\\d+: `), `f${i}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("the agent's collector", () => {
    const dir = mkdtempSync(join(tmpdir(), "kairos-fuzz-"));
    after(() => rmSync(dir, { recursive: true, force: true }));
    it("reads a directory of garbage without throwing; good files still merge", async () => {
      const r = rng(9);
      const oem = join(dir, "oem");
      mkdirSync(oem, { recursive: true });
      for (let i = 0; i < 7; i++) writeFileSync(join(oem, `${10 + i}-bad.yaml`), hostile(r, i));
      writeFileSync(join(oem, "90-good.yaml"), "#cloud-config\nhostname: survivor\n");
      const c = await collectConfig({ root: dir, dirs: ["/oem"], cmdline: false });
      assert.equal(c.merged.value.hostname, "survivor");
      assert.equal(c.errors.length, 7, `${c.errors.length} errors`);
      for (const e of c.errors) {
        assert.doesNotMatch(e.message, RAW_JS);
        assert.match(e.message, /^\S+:\d+:\d+: /);
      }
    });
  });
});
