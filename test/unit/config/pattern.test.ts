import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compilePattern, PatternError, validateConfig } from "../../../src/config/index.js";
import { parse } from "./helpers.js";

describe("only_* patterns: RE2 subset, linear time", () => {
  it("matches as Go's MatchString (unanchored) on the patterns configs use, same as RegExp", () => {
    const patterns = [
      "ubuntu",
      "^ubuntu$",
      "ubuntu|debian",
      "opensuse.*",
      "^(alpine|debian)$",
      "^2[0-9]\\.04$",
      "^1[2-4]$",
      "amd64|x86_64",
      "[^a-z]",
      "^\\d+(\\.\\d+)?$",
      "a{2,3}b",
      "(?:ab)+c",
      "^$",
      "x?y*z+",
      "\\w+-\\w+",
      "[a\\-z]",
    ];
    const inputs = [
      "ubuntu",
      "debian",
      "alpine",
      "opensuse-leap",
      "24.04",
      "22.04",
      "12",
      "15",
      "amd64",
      "",
      "aab",
      "aaaab",
      "ababc",
      "z",
      "foo-bar",
      "-",
      "x",
    ];
    for (const p of patterns) {
      const mine = compilePattern(p);
      const js = new RegExp(p);
      for (const s of inputs) assert.equal(mine.test(s), js.test(s), `${p} on ${JSON.stringify(s)}`);
    }
    assert.equal(compilePattern("(?i)^UBUNTU$").test("ubuntu"), true);
  });
  it("does not backtrack: (a+)+$ on a long non-matching input is instant", () => {
    const t0 = Date.now();
    assert.equal(compilePattern("(a+)+$").test(`${"a".repeat(100_000)}!`), false);
    assert.equal(compilePattern("(x|x|x|x)*y").test("x".repeat(50_000)), false);
    assert.ok(Date.now() - t0 < 3000, `${Date.now() - t0} ms`);
  });
  it("refuses what it does not support, with the offset", () => {
    for (const [p, re] of [
      ["(?=a)", /unsupported group flag/],
      ["a{1000}", /repeat count out of range/],
      ["(", /missing \)/],
      ["[a-", /missing \]/],
      ["*a", /nothing to repeat/],
      ["\\1", /unsupported escape/],
      ["x".repeat(2000), /longer than/],
      ["(a{100}){100}{100}", /too large|out of range/],
    ] as const) {
      assert.throws(
        () => compilePattern(p),
        (e: unknown) => e instanceof PatternError && re.test(e.message),
        p,
      );
    }
  });
  it("the validator refuses an unsupported only_os pattern at its line", () => {
    const r = validateConfig(
      parse('#cloud-config\nstages:\n  boot:\n  - only_os: "(?=ubuntu)"\n    commands: [ls]\n'),
    );
    assert.equal(
      r.errors[0]?.message,
      "test.yaml:4:14: stages.boot[0].only_os: not a supported regular expression: unsupported group flag (at character 1)",
    );
  });
});
