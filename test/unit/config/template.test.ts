import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseTemplate, renderTemplate, TemplateError, validateConfig } from "../../../src/config/index.js";
import { parse } from "./helpers.js";

const DATA = { MachineID: "0123456789abcdef", Random: "r4nd0mr4nd0m", Values: { node: { hostname: "n1" } } };

function fails(t: string): TemplateError {
  try {
    renderTemplate(t, DATA);
  } catch (err) {
    assert.ok(err instanceof TemplateError, String(err));
    return err;
  }
  assert.fail(`expected ${t} to fail`);
}

describe("Go templates with sprig", () => {
  it("renders the forms upstream's docs and e2e assets use", () => {
    const cases: [string, string][] = [
      ["kairos-{{ trunc 4 .Random }}", "kairos-r4nd"],
      ["node-{{ trunc 4 .MachineID }}", "node-0123"],
      ["{{ .MachineID | trunc 8 | upper }}", "01234567"],
      ['echo "{{.Values.node.hostname}}"', 'echo "n1"'],
      ['{{ default "none" .Values.node.missing }}', "none"],
      ['{{ "ab" | upper | quote }}', '"AB"'],
      ['{{ replace "-" "_" "a-b-c" }}', "a_b_c"],
      ['{{ b64enc "hi" }} {{ b64dec "aGk=" }}', "aGk= hi"],
      ['{{ trim "  x  " }}|{{ lower "ABC" }}', "x|abc"],
      ["{{ trunc -4 .MachineID }}", "cdef"],
      ['{{ printf "%s-%d" "n" 3 }}', "n-3"],
      ["a  {{- .Random | trunc 1 -}}  b", "arb"],
      ['{{ if eq .Values.node.hostname "n1" }}one{{ else if .Random }}two{{ else }}three{{ end }}', "one"],
      ["{{/* a comment */}}x", "x"],
      ["{{ (trunc 2 .MachineID) | upper }}", "01"],
      ["no templates here", "no templates here"],
    ];
    for (const [t, want] of cases) assert.equal(renderTemplate(t, DATA), want, t);
  });
  it("names the problem and its offset: unknown function, value, unsupported action, syntax", () => {
    assert.match(fails("x{{ shuffle .MachineID }}").message, /unknown template function shuffle/);
    assert.equal(fails("x{{ shuffle .MachineID }}").offset, 4);
    assert.match(
      fails("{{ .Nope }}").message,
      /unknown template value \.Nope \(known: \.MachineID, \.Random, \.Values\)/,
    );
    assert.match(fails("{{ range .Values }}{{ end }}").message, /"range" is not supported/);
    assert.match(fails("{{ $x := 1 }}").message, /variables/);
    assert.match(fails("{{ .MachineID ").message, /unclosed action/);
    assert.match(fails("{{ if .Random }}x").message, /"if" without "end"/);
    assert.match(fails("{{ end }}").message, /"end" without "if"/);
    assert.match(fails("{{ .Random | }}").message, /missing command after \|/);
  });
  it("parses hostile templates in linear time and caps the output", () => {
    const t0 = Date.now();
    assert.throws(() => parseTemplate("{{".repeat(300_000)), TemplateError);
    assert.equal(renderTemplate(`${" ".repeat(400_000)}x{{- "" }}`, DATA), `${" ".repeat(400_000)}x`);
    assert.throws(
      () => renderTemplate('{{ repeat 100000000 "ab" }}{{ repeat 100000000 "ab" }}', DATA),
      /1 MiB/,
    );
    assert.ok(Date.now() - t0 < 3000, `${Date.now() - t0} ms`);
  });
});

describe("the validator checks templates", () => {
  it("refuses an unknown function with file:line:col of the value", () => {
    const r = validateConfig(
      parse('#cloud-config\nstages:\n  boot:\n  - commands:\n    - echo ok\n    - "echo {{ nope 1 }}"\n'),
    );
    assert.equal(
      r.errors[0]?.message,
      "test.yaml:6:7: stages.boot[0].commands[1]: template: unknown template function nope (at character 9 of the value)",
    );
  });
  it("leaves values upstream does not render alone", () => {
    const r = validateConfig(parse('#cloud-config\nk3s:\n  args: ["{{ nope }}"]\n'));
    assert.deepEqual(r.errors, []);
  });
});
