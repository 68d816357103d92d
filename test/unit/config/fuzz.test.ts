import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ConfigError,
  configFromCmdline,
  parseCloudConfig,
  validateConfig,
} from "../../../src/config/index.js";
import { fixture } from "./helpers.js";

/** Deterministic PRNG (mulberry32), so a failure can be replayed from its seed. */
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

const PIECES = [
  ": ",
  "- ",
  "\n",
  "  ",
  "[",
  "]",
  "{",
  "}",
  '"',
  "'",
  "#",
  "&a ",
  "*a",
  "0644",
  "true",
  "~",
  "|",
  ">",
  "\t",
  "---\n",
  "!!binary ",
  "<<: *a\n",
  "::",
  ",",
  "é",
  "\u0000",
];

function mutate(text: string, r: () => number): string {
  let s = text;
  const n = 1 + Math.floor(r() * 4);
  for (let i = 0; i < n; i++) {
    const pos = Math.floor(r() * (s.length + 1));
    const op = Math.floor(r() * 5);
    if (op === 0) s = s.slice(0, pos) + PIECES[Math.floor(r() * PIECES.length)]! + s.slice(pos);
    else if (op === 1) s = s.slice(0, pos) + s.slice(pos + 1 + Math.floor(r() * 8));
    else if (op === 2)
      s = s.slice(0, pos) + String.fromCharCode(32 + Math.floor(r() * 95)) + s.slice(pos + 1);
    else if (op === 3) {
      const lines = s.split("\n");
      const a = Math.floor(r() * lines.length);
      const b = Math.floor(r() * lines.length);
      [lines[a], lines[b]] = [lines[b]!, lines[a]!];
      s = lines.join("\n");
    } else {
      const lines = s.split("\n");
      const a = Math.floor(r() * lines.length);
      lines[a] = lines[a]!.replace(/^\s*/, (m) => (r() < 0.5 ? `${m} ` : m.slice(1)));
      s = lines.join("\n");
    }
  }
  return s;
}

function checkError(e: ConfigError, text: string, file: string): void {
  const lines = text.split("\n").length;
  assert.equal(e.file, file);
  assert.ok(Number.isInteger(e.line) && e.line >= 1 && e.line <= lines + 1, `line ${e.line} of ${lines}`);
  assert.ok(Number.isInteger(e.col) && e.col >= 1, `col ${e.col}`);
  assert.ok(e.message.startsWith(`${file}:${e.line}:${e.col}: `), e.message);
}

describe("fuzz: mutated configs never crash and every error points at a line", () => {
  const seeds = ["reference.yaml", "stages.yaml", "cloudinit.yaml", "invalid.yaml"];
  const ITER = 500;
  for (const name of seeds) {
    it(`${ITER} mutations of ${name}`, () => {
      const base = fixture(name);
      const r = rng(name.length * 7919);
      let errors = 0;
      for (let i = 0; i < ITER; i++) {
        const text = mutate(base, r);
        try {
          const out = parseCloudConfig(text, "fuzz.yaml");
          if ("skipped" in out) continue;
          const v = validateConfig(out.config);
          for (const e of v.errors) checkError(e, text, "fuzz.yaml");
          for (const w of v.warnings) assert.ok(w.line >= 1 && w.col >= 1);
          errors += v.errors.length;
        } catch (err) {
          if (!(err instanceof ConfigError)) {
            assert.fail(`iteration ${i}: ${String((err as Error).stack)}\n--- input ---\n${text}`);
          }
          checkError(err, text, "fuzz.yaml");
          errors++;
        }
      }
      assert.ok(errors > 0, "the mutations should have produced some errors");
    });
  }
  it("2000 random kernel command lines never crash", () => {
    const r = rng(42);
    const words = [
      "install.device=/dev/vda",
      "stages.boot[0].commands[0]=x",
      "config_url=http://a",
      "install.auto",
      "users[0].name=k",
      "quiet",
      "a=b",
      '"',
      "install",
      "stages.boot[",
      "]",
      ".",
      "=",
      "strict=true",
      "install.partitions.oem.size=12",
    ];
    for (let i = 0; i < 2000; i++) {
      let line = "";
      const n = 1 + Math.floor(r() * 6);
      for (let j = 0; j < n; j++) line += (r() < 0.3 ? "" : " ") + words[Math.floor(r() * words.length)]!;
      try {
        const cfg = configFromCmdline(line);
        if (cfg) for (const e of validateConfig(cfg).errors) assert.ok(e.line === 1 && e.col >= 1);
      } catch (err) {
        if (!(err instanceof ConfigError)) assert.fail(`${line}: ${String(err)}`);
        assert.ok(err.col >= 1 && err.col <= line.length + 1);
      }
    }
  });
});
