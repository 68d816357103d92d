import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { FIXTURES } from "./helpers.js";

const BIN = join(import.meta.dirname, "../../../bin");

function cli(
  tool: "kairos" | "kairos-agent",
  args: string[],
  cwd?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(join(BIN, tool), args, { encoding: "utf8", cwd }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

let tmp: string;
let server: Server;
let base: string;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), "kairos-cli-"));
  server = createServer((req, res) => {
    if (req.url === "/good.yaml") res.end(readFileSync(join(FIXTURES, "reference.yaml")));
    else if (req.url === "/bad.yaml") res.end("#cloud-config\nstrict: perhaps\n");
    else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe("kairos validate (build host)", () => {
  it("prints each error on its own line with file:line:col and exits 1", async () => {
    const f = join(FIXTURES, "invalid.yaml");
    const r = await cli("kairos", ["validate", f]);
    assert.equal(r.code, 1);
    const errors = r.stderr.split("\n").filter((l) => l.startsWith("error: "));
    assert.equal(errors.length, 6, r.stderr);
    assert.equal(
      errors[0],
      `error: ${f}:4:18: users[0].lock_passwd: expected true or false, got "yes please"`,
    );
    assert.ok(
      r.stderr.includes(
        `warning: ${f}:16:7: stages.boot[1].comands: unknown key, ignored — did you mean "commands"?`,
      ),
      r.stderr,
    );
  });
  it("exits 0 for valid files", async () => {
    const r = await cli("kairos", [
      "validate",
      join(FIXTURES, "reference.yaml"),
      join(FIXTURES, "stages.yaml"),
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /reference\.yaml: valid\n.*stages\.yaml: valid\n/);
  });
  it("gives machine output with --json", async () => {
    const r = await cli("kairos", ["--json", "validate", join(FIXTURES, "invalid.yaml")]);
    assert.equal(r.code, 1);
    const v = JSON.parse(r.stdout);
    assert.equal(v.valid, false);
    assert.deepEqual(v.errors[0], {
      file: join(FIXTURES, "invalid.yaml"),
      line: 4,
      col: 18,
      keyPath: "users[0].lock_passwd",
      message: `${join(FIXTURES, "invalid.yaml")}:4:18: users[0].lock_passwd: expected true or false, got "yes please"`,
    });
  });
  it("rejects a file without a header and a missing file", async () => {
    const f = join(tmp, "nohdr.yaml");
    writeFileSync(f, "install:\n  device: auto\n");
    const r = await cli("kairos", ["validate", f, join(tmp, "missing.yaml")]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /nohdr\.yaml:1:1: no #cloud-config header/);
    assert.match(r.stderr, /missing\.yaml:1:1: cannot read/);
  });
});

describe("kairos-agent", () => {
  it("print-schema prints the JSON Schema", async () => {
    const r = await cli("kairos-agent", ["print-schema"]);
    assert.equal(r.code, 0);
    const s = JSON.parse(r.stdout);
    assert.equal(s.title, "Kairos cloud-config");
    assert.ok(s.properties.stages && s.properties.install.properties.grub_options);
  });
  it("validate takes a path relative to the current directory", async () => {
    const r = await cli("kairos-agent", ["validate", "stages.yaml"], FIXTURES);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /stages\.yaml: valid/);
  });
  it("validate takes a URL; exit code tells", async () => {
    const good = await cli("kairos-agent", ["validate", `${base}/good.yaml`]);
    assert.equal(good.code, 0, good.stderr);
    const bad = await cli("kairos-agent", ["validate", `${base}/bad.yaml`]);
    assert.equal(bad.code, 1);
    assert.match(
      bad.stderr,
      new RegExp(`error: ${base}/bad\\.yaml:2:9: strict: expected true or false, got "perhaps"`),
    );
  });
  it("config --sources shows where each value came from", async () => {
    const root = mkdtempSync(join(tmp, "root-"));
    mkdirSync(join(root, "oem"));
    mkdirSync(join(root, "etc/kairos"), { recursive: true });
    writeFileSync(
      join(root, "etc/kairos/10.yaml"),
      "#cloud-config\ninstall:\n  device: /dev/sda\n  reboot: true\n",
    );
    writeFileSync(join(root, "oem/20.yaml"), "#cloud-config\ninstall:\n  device: /dev/vda\n");
    const r = await cli("kairos-agent", ["config", "--root", root, "--sources", "--no-cmdline"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      `install.device = "/dev/vda"  # ${join(root, "oem/20.yaml")}:3\ninstall.reboot = true  # ${join(root, "etc/kairos/10.yaml")}:4\n`,
    );
    const y = await cli("kairos-agent", ["config", "--root", root, "--no-cmdline"]);
    assert.equal(y.stdout, "#cloud-config\ninstall:\n  device: /dev/vda\n  reboot: true\n");
  });
  it("run-stage runs against --root; --strict turns a failing step into exit 1", async () => {
    const root = mkdtempSync(join(tmp, "stage-"));
    mkdirSync(join(root, "oem"));
    writeFileSync(
      join(root, "oem/a.yaml"),
      '#cloud-config\nstages:\n  fs:\n  - files:\n    - path: /etc/hello\n      content: hi\n  - commands: ["exit 4"]\n',
    );
    const r = await cli("kairos-agent", ["run-stage", "fs", "--root", root]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(readFileSync(join(root, "etc/hello"), "utf8"), "hi");
    assert.match(r.stderr, /fs\[1\] "step 1": commands: failed: sh -c 'exit 4' exited with code 4/);
    const s = await cli("kairos-agent", ["run-stage", "fs", "--root", root, "--strict"]);
    assert.equal(s.code, 1);
    assert.match(s.stderr, /error: stage fs: step 1 "step 1" failed/);
  });
});
