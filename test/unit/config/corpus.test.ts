import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { verdictFor } from "../../../src/cli/commands/config.js";
import { FIXTURES } from "./helpers.js";

/**
 * Configs written here in the shapes Kairos users have (docs reference, e2e assets, examples,
 * and the mistakes upstream refuses). Each file says, on a `# expect:` line, the verdict
 * upstream Kairos gives it and, for a refusal or a warning, the line and words expected:
 *   # expect: valid                 valid, and no warning at all (no known key called unknown)
 *   # expect: warning LINE TEXT     valid, with a warning at LINE containing TEXT
 *   # expect: invalid LINE TEXT     refused; the first error is at LINE and contains TEXT
 */
const CORPUS = join(FIXTURES, "corpus");

interface Expectation {
  verdict: "valid" | "warning" | "invalid";
  line?: number;
  text?: string;
}

function expectation(text: string, name: string): Expectation {
  const m = /^# expect: (valid|warning|invalid)(?: (\d+) (.+))?$/m.exec(text);
  assert.ok(m, `${name} has no "# expect:" line`);
  return {
    verdict: m[1] as Expectation["verdict"],
    ...(m[2] ? { line: Number(m[2]), text: m[3]! } : {}),
  };
}

describe("corpus: Kairos-shaped configs get Kairos' verdict", () => {
  const files = readdirSync(CORPUS)
    .filter((f) => f.endsWith(".yaml"))
    .sort();
  it("has configs of every kind", () => {
    const kinds = new Set(files.map((f) => expectation(readFileSync(join(CORPUS, f), "utf8"), f).verdict));
    assert.deepEqual([...kinds].sort(), ["invalid", "valid", "warning"]);
    assert.ok(files.length >= 25, `${files.length} files`);
  });
  for (const f of files) {
    const text = readFileSync(join(CORPUS, f), "utf8");
    const want = expectation(text, f);
    it(`${f}: ${want.verdict}${want.line ? ` at line ${want.line}` : ""}`, () => {
      const v = verdictFor(text, f);
      const errors = v.errors.map((e) => e.message);
      const warnings = v.warnings.map((w) => `${w.line}: ${w.keyPath ? `${w.keyPath}: ` : ""}${w.message}`);
      if (want.verdict === "invalid") {
        assert.equal(v.valid, false, `expected a refusal; warnings: ${warnings.join("; ")}`);
        const e = v.errors[0]!;
        assert.equal(e.line, want.line, errors.join("\n"));
        assert.ok(e.message.includes(want.text!), `${e.message}\n  does not contain\n${want.text}`);
        assert.ok(e.message.startsWith(`${f}:${e.line}:${e.col}: `), e.message);
        return;
      }
      assert.deepEqual(errors, [], "expected the config to be accepted");
      assert.equal(v.valid, true);
      if (want.verdict === "valid") {
        assert.deepEqual(warnings, [], "a valid Kairos config gets no warnings");
      } else {
        assert.ok(
          v.warnings.some((w) => w.line === want.line && `${w.keyPath}: ${w.message}`.includes(want.text!)),
          `no warning at line ${want.line} with ${want.text}; got ${warnings.join("; ")}`,
        );
      }
    });
  }
});
