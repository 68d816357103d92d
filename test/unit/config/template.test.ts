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
    assert.match(fails("{{ $y }}").message, /undefined variable \$y/);
    assert.match(fails("{{ if 1 }}{{ $x := 1 }}{{ end }}{{ $x }}").message, /undefined variable \$x/);
    assert.match(fails("{{ $x = 1 }}").message, /undefined variable \$x/);
    assert.match(fails('{{ template "nope" }}').message, /no template named "nope"/);
    assert.match(fails("{{ break }}").message, /"break" outside "range"/);
    assert.match(fails("{{ range 3 }}{{ else if 1 }}{{ end }}").message, /"else if" inside "range"/);
    assert.match(fails("{{ $a, $b := 1 }}").message, /only range takes two variables/);
    assert.match(fails('{{ range "abc" }}x{{ end }}').message, /range can't iterate over abc/);
    assert.match(
      fails('{{ define "a" }}{{ template "a" }}{{ end }}{{ template "a" }}').message,
      /deeper than 100/,
    );
    assert.match(fails("{{ .MachineID ").message, /unclosed action/);
    assert.match(fails("{{ if .Random }}x").message, /"if" without "end"/);
    assert.match(fails("{{ end }}").message, /"end" without a block/);
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

describe("upstream's own templates render", () => {
  it("renders the templates in Kairos' assets, examples, docs and agent tests", () => {
    const cases: [source: string, template: string, data: Record<string, unknown>, want: string][] = [
      ["kairos-io/kairos tests/assets/autoinstall.yaml", "kairos-{{ trunc 4 .Random }}", DATA, "kairos-r4nd"],
      [
        "kairos-io/kairos examples/cloud-configs/master.yaml",
        "metal-{{ trunc 4 .MachineID }}",
        DATA,
        "metal-0123",
      ],
      [
        "kairos-io/kairos-docs content/en/docs/Reference/stage_modules.md",
        "node-{{ trunc 4 .MachineID }}",
        DATA,
        "node-0123",
      ],
      ["yip README (node-data interpolation)", 'echo "{{.Values.node.hostname}}"', DATA, 'echo "n1"'],
      [
        "kairos-io/kairos-agent tests/fixtures/template/test.yaml",
        'configTest: "{{.Config.testKey | upper}}"\nstateTest: "{{.State.uuid | trunc 8}}"',
        { Config: { testKey: "testValue" }, State: { uuid: "0f1e2d3c4b5a6978" } },
        'configTest: "TESTVALUE"\nstateTest: "0f1e2d3c"',
      ],
    ];
    for (const [source, t, data, want] of cases) assert.equal(renderTemplate(t, data), want, source);
  });
  it("renders AuroraBoot's master-template.yaml with [[ ]] and leaves the node's {{ }} for later", () => {
    // kairos-io/kairos examples/auroraboot/master-template.yaml
    const t =
      "#cloud-config\n\nhostname: metal-{{ trunc 4 .MachineID }}\nusers:\n- name: kairos\n  # Change to your pass here\n  passwd: [[.kairos.password]]\n  ssh_authorized_keys:\n  # Replace with your github user and un-comment the line below:\n  - github:[[.github.user]]\n\nk3s:\n  enabled: true\n  args:\n  - --disable=traefik,servicelb\n";
    const out = renderTemplate(t, { kairos: { password: "secret" }, github: { user: "me" } }, ["[[", "]]"]);
    assert.match(out, /passwd: secret\n/);
    assert.match(out, /- github:me\n/);
    assert.match(out, /hostname: metal-\{\{ trunc 4 \.MachineID \}\}/);
    const r = validateConfig(parse(out));
    assert.deepEqual([r.errors, r.warnings], [[], []]);
    assert.equal(renderTemplate("metal-{{ trunc 4 .MachineID }}", DATA), "metal-0123");
  });
});

describe("Go template control structures and variables", () => {
  const D = {
    ...DATA,
    Values: { node: { hostname: "n1" }, list: ["a", "b", "c"], map: { z: 1, a: 2 }, empty: [] },
  };
  it("renders range, with, variables, define/template/block as text/template does", () => {
    const cases: [string, string][] = [
      ["{{ range .Values.list }}[{{ . }}]{{ end }}", "[a][b][c]"],
      ["{{ range $i, $e := .Values.list }}{{ $i }}={{ $e }} {{ end }}", "0=a 1=b 2=c "],
      ["{{ range $k, $v := .Values.map }}{{ $k }}:{{ $v }};{{ end }}", "a:2;z:1;"],
      ["{{ range $e := .Values.list }}{{ $e }}{{ end }}", "abc"],
      ["{{ range .Values.empty }}x{{ else }}none{{ end }}", "none"],
      ["{{ range 3 }}{{ . }}{{ end }}", "012"],
      ['{{ range .Values.list }}{{ if eq . "b" }}{{ break }}{{ end }}{{ . }}{{ end }}', "a"],
      ['{{ range .Values.list }}{{ if eq . "b" }}{{ continue }}{{ end }}{{ . }}{{ end }}', "ac"],
      ["{{ with .Values.node }}{{ .hostname }}{{ end }}", "n1"],
      ["{{ with .Values.nope }}x{{ else }}y{{ end }}", "y"],
      ["{{ with .Values.nope }}x{{ else with .Values.node }}{{ .hostname }}{{ end }}", "n1"],
      ["{{ with $n := .Values.node }}{{ $n.hostname }}{{ end }}", "n1"],
      ["{{ $x := trunc 4 .MachineID }}{{ $x }}-{{ $x | upper }}", "0123-0123"],
      ['{{ $x := "a" }}{{ if true }}{{ $x = "b" }}{{ end }}{{ $x }}', "b"],
      ["{{ range .Values.list }}{{ $.Random | trunc 2 }}{{ end }}", "r4r4r4"],
      ['{{ printf "%s-%s" (upper "ab") (trunc 3 .MachineID) }}', "AB-012"],
      ['{{ define "h" }}host-{{ . }}{{ end }}{{ template "h" .Values.node.hostname }}', "host-n1"],
      ['{{ template "late" }}{{ define "late" }}L{{ end }}', "L"],
      ['{{ block "b" .Values.node }}[{{ .hostname }}]{{ end }}', "[n1]"],
      ["{{ if .Values.nope }}a{{ else if .Values.node }}b{{ else }}c{{ end }}", "b"],
    ];
    for (const [t, want] of cases) assert.equal(renderTemplate(t, D), want, t);
  });
  it("bounds loops: a huge range is refused, not run", () => {
    assert.throws(() => renderTemplate("{{ range 100000000 }}{{ end }}", D), /longer than 1000000 steps/);
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
