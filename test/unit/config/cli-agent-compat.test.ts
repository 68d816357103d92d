import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

const BIN = join(import.meta.dirname, "../../../bin");

function agent(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // Without $UUID: it would override the machine id in .State.uuid, as upstream's does.
    const { UUID: _uuid, ...env } = process.env;
    execFile(join(BIN, "kairos-agent"), args, { encoding: "utf8", env }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

let root: string;
before(() => {
  root = mkdtempSync(join(tmpdir(), "kairos-agentcli-"));
  mkdirSync(join(root, "etc/kairos"), { recursive: true });
  writeFileSync(join(root, "etc/os-release"), "ID=debian\n");
  writeFileSync(join(root, "etc/machine-id"), "0123456789abcdef\n");
  writeFileSync(
    join(root, "etc/kairos/10.yaml"),
    "#cloud-config\nusers:\n- name: kai\ninstall:\n  device: /dev/vda\nstages:\n  boot:\n  - name: motd\n    files: [{path: /etc/motd, content: hi}]\n",
  );
});
after(() => rmSync(root, { recursive: true, force: true }));

describe("kairos-agent: upstream's commands and flags", () => {
  it("config get KEY prints one value by dotted key, nothing when unset", async () => {
    const base = ["config", "--root", root, "--no-cmdline", "get"];
    assert.equal((await agent([...base, "install.device"])).stdout, "/dev/vda\n");
    assert.equal((await agent([...base, "users[0].name"])).stdout, "kai\n");
    const none = await agent([...base, "install.nothing"]);
    assert.deepEqual([none.code, none.stdout], [0, ""]);
  });
  it("--strict-validation makes a file that does not validate fatal; without it the file is skipped", async () => {
    const bad = join(root, "etc/kairos/20.yaml");
    writeFileSync(bad, "#cloud-config\nstrict: perhaps\n");
    try {
      const strict = await agent([
        "--strict-validation",
        "config",
        "--root",
        root,
        "--no-cmdline",
        "get",
        "install.device",
      ]);
      assert.equal(strict.code, 1);
      assert.match(strict.stderr, /error: .*20\.yaml:2:9: strict: expected true or false/);
      const lax = await agent(["config", "--root", root, "--no-cmdline", "get", "install.device"]);
      assert.deepEqual([lax.code, lax.stdout], [0, "/dev/vda\n"]);
    } finally {
      rmSync(bad);
    }
  });
  it("render-template renders a file with .Config, .State, .Values and .MachineID; an unknown function names its line", async () => {
    const t = join(root, "t.tpl");
    // The shape of upstream's fixture (kairos-agent tests/fixtures/template/test.yaml), with a
    // state field we have: .Config and .State are what upstream's render-template offers.
    writeFileSync(
      t,
      'configTest: "{{.Config.install.device | upper}}"\nstateTest: "{{.State.boot | trunc 6}}"\n',
    );
    const up = await agent(["render-template", "-f", t, "--root", root]);
    assert.equal(up.stdout, 'configTest: "/DEV/VDA"\nstateTest: "unknow"\n', up.stderr);
    writeFileSync(
      t,
      "{{ (index .Config.users 0).name }} {{ .Values.os.vendor | upper }} {{ trunc 4 .MachineID }}\n",
    );
    const r = await agent(["render-template", "-f", t, "--root", root]);
    assert.equal(r.stdout, "kai DEBIAN 0123\n", r.stderr);
    // upstream's .State.uuid (machine id + "-" + hostname, read under --root) and its sysinfo facts.
    mkdirSync(join(root, "proc/sys/kernel"), { recursive: true });
    writeFileSync(join(root, "proc/sys/kernel/hostname"), "edge-1\n");
    writeFileSync(t, "{{ .State.uuid }} {{ .State.system.node.hostname }}\n");
    const st = await agent(["render-template", "-f", t, "--root", root]);
    assert.equal(st.stdout, "0123456789abcdef-edge-1 edge-1\n", st.stderr);
    writeFileSync(t, "ok\n  {{ nope }}\n");
    const bad = await agent(["render-template", "-f", t, "--root", root]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /t\.tpl:2:6: template: unknown template function nope/);
  });
  it("run-stage --analyze lists the steps and runs nothing", async () => {
    const r = await agent(["--json", "run-stage", "boot", "--root", root, "--analyze"]);
    assert.equal(r.code, 0, r.stderr);
    const plan = JSON.parse(r.stdout) as { stage: string; steps: { name: string; keys: string[] }[] }[];
    assert.deepEqual(
      plan.map((p) => p.stage),
      ["boot.before", "boot", "boot.after"],
    );
    assert.ok(plan[1]!.steps.some((s) => s.name === "motd" && s.keys.includes("files")));
  });
  it("print-schema --version, version --long and --debug", async () => {
    const s = JSON.parse((await agent(["print-schema", "--version", "v3.2.1"])).stdout);
    assert.equal(s.$schema, "https://kairos.io/v3.2.1/cloud-config.json");
    const v = JSON.parse((await agent(["version", "--long"])).stdout);
    assert.equal(v.node, process.version);
    const d = await agent(["--debug", "render-template", "-f", join(root, "missing.tpl")]);
    assert.equal(d.code, 1);
    assert.match(d.stderr, /cannot read/);
    assert.match(d.stderr, /\n\s+at /, "--debug prints the stack");
  });
});
