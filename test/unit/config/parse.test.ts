import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, findHeader, parseCloudConfig } from "../../../src/config/index.js";
import { fixture, parse } from "./helpers.js";

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail("expected a ConfigError");
}

describe("cloud-config header", () => {
  it("accepts #cloud-config, #kairos-config and #node-config", () => {
    assert.equal(findHeader("#cloud-config\na: 1\n"), "#cloud-config");
    assert.equal(findHeader("#kairos-config\n"), "#kairos-config");
    assert.equal(findHeader("#node-config\n"), "#node-config");
  });
  it("finds the header after blank and comment lines", () => {
    assert.equal(findHeader("\n# my node\n#cloud-config\nfoo: 1\n"), "#cloud-config");
    assert.equal(parse(fixture("legacy-header.yaml")).header, "#kairos-config");
  });
  it("skips a file without a header, with a note naming the file", () => {
    const out = parseCloudConfig("install:\n  device: auto\n", "/oem/x.yaml");
    assert.ok("skipped" in out);
    assert.equal(out.skipped.file, "/oem/x.yaml");
    assert.match(out.skipped.message, /no #cloud-config header/);
  });
  it("accepts the header on any of the first 9 lines, after YAML too (as upstream's collector)", () => {
    assert.equal(findHeader("a: 1\n#cloud-config\n"), "#cloud-config");
    assert.equal(findHeader(`${"#\n".repeat(8)}#cloud-config\nb: 1\n`), "#cloud-config");
    assert.equal(findHeader(`${"#\n".repeat(9)}#cloud-config\n`), "#cloud-config", "tenth and last line");
  });
  it("does not accept a header further down, indented, or followed by words", () => {
    assert.equal(findHeader(`${"#\n".repeat(9)}#cloud-config\nb: 1\n`), undefined);
    assert.equal(findHeader(`${"#\n".repeat(12)}#cloud-config\n`), undefined);
    assert.equal(findHeader("  #cloud-config\n"), undefined);
    assert.equal(findHeader("#cloud-config please\n"), undefined);
    assert.equal(findHeader("#cloud-config   \r\na: 1\n"), "#cloud-config", "trailing white space is fine");
  });
});

describe("YAML parsing", () => {
  it("reads YAML 1.1 octal modes: 0644 is 420", () => {
    const c = parse("#cloud-config\nstages:\n  boot:\n  - files:\n    - path: /x\n      permissions: 0644\n");
    const steps = (c.value.stages as Record<string, { files: { permissions: number }[] }[]>).boot!;
    assert.equal(steps[0]!.files[0]!.permissions, 420);
  });
  it("refuses duplicate keys with their line and column", () => {
    const e = thrown(() => parse("#cloud-config\ninstall:\n  device: /dev/sda\n  device: /dev/sdb\n"));
    assert.equal(e.line, 4);
    assert.equal(e.col, 3);
    assert.match(e.message, /^test\.yaml:4:3: duplicate key "device"$/);
  });
  it("reports a YAML syntax error with file:line:col", () => {
    const e = thrown(() => parse("#cloud-config\nusers:\n  - name: [unterminated\n"));
    assert.equal(e.file, "test.yaml");
    assert.equal(e.message, "test.yaml:3:11: this [ is not closed with ] before the next key");
  });
  it("refuses a document that is not a map", () => {
    const e = thrown(() => parse("#cloud-config\n- a\n- b\n"));
    assert.equal(e.line, 2);
    assert.match(e.message, /expected a map of keys at the top level/);
  });
  it("reads YAML 1.1 booleans but keeps times, dates and y/n as strings", () => {
    const c = parse("#cloud-config\na: yes\nb: off\nc: 12:30\nd: 2024-01-01\ne: y\nf: N\ng: 0x1f\n");
    assert.deepEqual(c.value, { a: true, b: false, c: "12:30", d: "2024-01-01", e: "y", f: "N", g: 31 });
  });
  it("turns !!binary, !!set and !!omap into plain data, never sets or buffers", () => {
    const c = parse("#cloud-config\na: !!binary aGVsbG8=\nb: !!set {x, y}\n");
    assert.deepEqual(c.value, { a: "aGVsbG8=", b: { x: null, y: null } });
  });
  it("refuses an alias bomb (billion laughs) quickly instead of expanding it", () => {
    let text = "#cloud-config\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n";
    for (let i = 1; i < 9; i++)
      text += `a${i}: &a${i} [${Array(10)
        .fill(`*a${i - 1}`)
        .join(", ")}]\n`;
    const t0 = Date.now();
    const e = thrown(() => parse(text));
    assert.match(e.message, /^test\.yaml:\d+:\d+: aliases expand to more than 100000 values$/);
    assert.ok(e.line > 2, "points at the alias that overflows, not at the top of the file");
    assert.ok(Date.now() - t0 < 10_000, "refused quickly, not expanded");
  });
  it("treats an empty config as an empty map", () => {
    assert.deepEqual(parse("#cloud-config\n").value, {});
  });
  it("records positions of keys and values", () => {
    const c = parse(fixture("reference.yaml"), "reference.yaml");
    const p = c.positions.get("install.grub_options.extra_cmdline");
    assert.ok(p);
    assert.equal(p.keyLine, 30);
    assert.equal(p.keyCol, 5);
  });
  it("keeps a __proto__ key as data", () => {
    const c = parse("#cloud-config\n__proto__:\n  polluted: true\n");
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.getPrototypeOf(c.value), Object.prototype);
  });
});
