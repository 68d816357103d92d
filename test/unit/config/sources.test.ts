import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { collectConfig, loadSource } from "../../../src/config/index.js";
import { FIXTURES } from "./helpers.js";

let root: string;
let server: Server;
let base: string;
const hits = new Map<string, number>();
const fast = { attempts: 3, backoffMs: 10, timeoutMs: 20_000 }; // generous: this host is often loaded

function put(rel: string, text: string): void {
  const p = join(root, rel);
  mkdirSync(join(p, ".."), { recursive: true });
  writeFileSync(p, text);
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), "kairos-sources-"));
  server = createServer((req, res) => {
    const n = (hits.get(req.url!) ?? 0) + 1;
    hits.set(req.url!, n);
    const send = (status: number, body = "") => {
      res.writeHead(status, { "content-type": "text/yaml" });
      res.end(body);
    };
    switch (req.url) {
      case "/flaky.yaml": // fails twice, then answers
        return n < 3 ? send(503) : send(200, "#cloud-config\ninstall:\n  device: /dev/flaky\n");
      case "/missing.yaml":
        return send(404);
      case "/chain-1.yaml":
        return send(200, `#cloud-config\nconfig_url: ${base}/chain-2.yaml\nusers:\n- name: one\n`);
      case "/chain-2.yaml":
        return send(200, `#cloud-config\nconfig_url: ${base}/chain-1.yaml\nusers:\n- name: two\n`);
      case "/deep-0.yaml":
      case "/deep-1.yaml":
      case "/deep-2.yaml": {
        const i = Number(req.url.slice(6, 7));
        return send(200, `#cloud-config\nconfig_url: ${base}/deep-${i + 1}.yaml\n`);
      }
      case "/endless.yaml": {
        // Streams without a length until the client gives up; must not be buffered whole.
        res.writeHead(200, { "content-type": "text/yaml" });
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        let sent = 0;
        const pump = () => {
          while (sent < 64 * 1024 * 1024 && res.write(chunk)) sent += chunk.length;
          if (sent < 64 * 1024 * 1024) res.once("drain", pump);
          else res.end();
        };
        res.on("close", () => {
          sent = Number.POSITIVE_INFINITY;
        });
        pump();
        return;
      }
      case "/noheader.yaml":
        return send(200, "install:\n  device: /dev/x\n");
      case "/bad.yaml":
        return send(200, "#cloud-config\ninstall:\n  reboot: maybe\n");
      default:
        return send(404);
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.close();
  rmSync(root, { recursive: true, force: true });
});

describe("config sources", () => {
  it("reads the directories in Kairos order and files in lexical order; later wins", async () => {
    const r = mkdtempSync(join(root, "order-"));
    const w = (rel: string, t: string) => {
      mkdirSync(join(r, rel, ".."), { recursive: true });
      writeFileSync(join(r, rel), `#cloud-config\n${t}`);
    };
    w("run/initramfs/live/config.yaml", "install:\n  device: /dev/live\nusers:\n- name: live\n");
    w("usr/local/cloud-config/10.yaml", "install:\n  device: /dev/persistent\n");
    w("etc/kairos/b.yaml", "users:\n- name: etc-b\ninstall:\n  device: /dev/etc\n  poweroff: true\n");
    w("etc/kairos/a.yml", "users:\n- name: etc-a\n");
    w("oem/99_custom.yaml", "install:\n  reboot: true\nusers:\n- name: oem\n");
    w("system/oem/00.yaml", "users:\n- name: system\n");
    writeFileSync(join(r, "oem/notes.txt"), "#cloud-config\nusers:\n- name: not-yaml-extension\n");
    const c = await collectConfig({ root: r, cmdline: false });
    assert.deepEqual(c.errors, []);
    assert.deepEqual(
      (c.merged.value.users as { name: string }[]).map((u) => u.name),
      ["live", "etc-a", "etc-b", "oem"],
    );
    assert.deepEqual(c.merged.value.install, { device: "/dev/persistent", poweroff: true, reboot: true });
    assert.equal(c.merged.sources.get("install.device"), join(r, "usr/local/cloud-config/10.yaml:3"));
    const sys = await collectConfig({ root: r, cmdline: false, includeSystem: true });
    assert.equal((sys.merged.value.users as { name: string }[])[0]!.name, "system");
  });

  it("skips files without a header with a note, and leaves invalid files out with an error", async () => {
    const r = mkdtempSync(join(root, "skip-"));
    mkdirSync(join(r, "oem"), { recursive: true });
    writeFileSync(join(r, "oem/a.yaml"), "users:\n- name: nohdr\n");
    writeFileSync(join(r, "oem/b.yaml"), "#cloud-config\ninstall:\n  reboot: sometimes\n");
    writeFileSync(join(r, "oem/c.yaml"), "#cloud-config\nusers:\n- name: good\n");
    const c = await collectConfig({ root: r, cmdline: false });
    assert.deepEqual(c.merged.value, { users: [{ name: "good" }] });
    assert.equal(c.errors.length, 1);
    assert.equal(
      c.errors[0]!.message,
      `${join(r, "oem/b.yaml")}:3:11: install.reboot: expected true or false, got "sometimes"`,
    );
    assert.ok(
      c.notes.some((n) => n.file === join(r, "oem/a.yaml") && /no #cloud-config header/.test(n.message)),
    );
  });

  it("refuses a config file larger than 4 MiB", async () => {
    const r = mkdtempSync(join(root, "big-"));
    mkdirSync(join(r, "oem"));
    writeFileSync(join(r, "oem/big.yaml"), `#cloud-config\n# ${"x".repeat(4 * 1024 * 1024)}\n`);
    const c = await collectConfig({ root: r, cmdline: false });
    assert.match(c.errors[0]!.message, /big\.yaml:1:1: file is larger than 4194304 bytes/);
  });

  it("reads header-less stage files as yip does when asked (boot stages), only name and stages", async () => {
    const r = mkdtempSync(join(root, "yip-"));
    mkdirSync(join(r, "system/oem"), { recursive: true });
    writeFileSync(join(r, "system/oem/00.yaml"), readFileSync(join(FIXTURES, "yip-no-header.yaml")));
    writeFileSync(join(r, "system/oem/01.yaml"), "some: other\nyaml: file\n");
    const c = await collectConfig({ root: r, cmdline: false, includeSystem: true });
    assert.deepEqual(c.errors, []);
    const stages = c.merged.value.stages as Record<
      string,
      { name: string; environment?: Record<string, string> }[]
    >;
    assert.deepEqual(Object.keys(stages), ["rootfs.before", "network", "initramfs"]);
    assert.equal(stages.network![0]!.name, "look for userdata again");
    assert.equal(stages.initramfs![0]!.environment!.PERSISTENT_STATE_PATHS, "/etc/ssh /home");
    assert.equal(c.merged.value.users, undefined);
    const ignored = c.notes.find((n) => n.keyPath === "users");
    assert.ok(ignored && /only "name" and "stages" count/.test(ignored.message) && ignored.line === 28);
    assert.ok(c.notes.some((n) => n.file.endsWith("01.yaml") && /no #cloud-config header/.test(n.message)));
    const plain = await collectConfig({ root: r, cmdline: false, includeSystem: true, acceptYip: false });
    assert.equal(plain.merged.value.stages, undefined);
  });

  it("reads the directories named in cloud-init-paths for stages, once each", async () => {
    const r = mkdtempSync(join(root, "cip-"));
    mkdirSync(join(r, "oem"));
    mkdirSync(join(r, "opt/stages"), { recursive: true });
    writeFileSync(join(r, "oem/a.yaml"), "#cloud-config\ncloud-init-paths: [/opt/stages, /oem]\n");
    writeFileSync(join(r, "opt/stages/x.yaml"), "stages:\n  boot:\n  - name: from-extra-path\n");
    const c = await collectConfig({ root: r, cmdline: false, acceptYip: true });
    assert.deepEqual(c.merged.value.stages, { boot: [{ name: "from-extra-path" }] });
    assert.equal(c.configs.length, 2);
    const plain = await collectConfig({ root: r, cmdline: false });
    assert.equal(plain.merged.value.stages, undefined, "only stage runs read them");
  });

  it("reads config from <root>/proc/cmdline", async () => {
    const r = mkdtempSync(join(root, "cmdline-"));
    mkdirSync(join(r, "proc"));
    writeFileSync(join(r, "proc/cmdline"), "console=ttyS0 install.device=/dev/vdb install.auto\n");
    const c = await collectConfig({ root: r });
    assert.deepEqual(c.merged.value, { install: { device: "/dev/vdb", auto: true } });
    assert.equal(c.merged.sources.get("install.device"), `${join(r, "proc/cmdline")}:1`);
  });

  it("fetches config_url with retries and merges it after the file that named it", async () => {
    const r = mkdtempSync(join(root, "url-"));
    mkdirSync(join(r, "oem"));
    writeFileSync(
      join(r, "oem/a.yaml"),
      `#cloud-config\nconfig_url: ${base}/flaky.yaml\ninstall:\n  device: /dev/file\n`,
    );
    const c = await collectConfig({ root: r, cmdline: false, fetch: fast });
    assert.deepEqual(c.errors, []);
    assert.equal(hits.get("/flaky.yaml"), 3);
    assert.equal((c.merged.value.install as { device: string }).device, "/dev/flaky");
    assert.equal(c.merged.sources.get("install.device"), `${base}/flaky.yaml:3`);
  });

  it("fetches config_url given on the kernel command line", async () => {
    const r = mkdtempSync(join(root, "urlcmd-"));
    hits.delete("/flaky.yaml");
    const c = await collectConfig({ root: r, cmdline: `quiet config_url=${base}/flaky.yaml`, fetch: fast });
    assert.equal((c.merged.value.install as { device: string }).device, "/dev/flaky");
  });

  it("does not retry a 404 and reports it at the config_url line", async () => {
    const r = mkdtempSync(join(root, "404-"));
    mkdirSync(join(r, "oem"));
    writeFileSync(
      join(r, "oem/a.yaml"),
      `#cloud-config\nusers:\n- name: x\nconfig_url: ${base}/missing.yaml\n`,
    );
    const c = await collectConfig({ root: r, cmdline: false, fetch: fast });
    assert.equal(hits.get("/missing.yaml"), 1);
    assert.equal(c.errors.length, 1);
    assert.match(
      c.errors[0]!.message,
      new RegExp(`oem/a\\.yaml:4:13: config_url: could not fetch ${base}/missing\\.yaml: HTTP 404`),
    );
    assert.deepEqual(c.merged.value.users, [{ name: "x" }]);
  });

  it("follows a config_url chain once, never in a loop", async () => {
    const r = await loadSource(`${base}/chain-1.yaml`, { fetch: fast });
    assert.deepEqual(
      r.configs.map((c) => c.file),
      [`${base}/chain-1.yaml`, `${base}/chain-2.yaml`],
    );
    assert.ok(r.notes.some((n) => /already read/.test(n.message)));
  });

  it("bounds config_url recursion depth", async () => {
    const r = await loadSource(`${base}/deep-0.yaml`, { fetch: { ...fast, maxDepth: 2 } });
    assert.equal(r.configs.length, 3);
    assert.match(r.errors[0]!.message, /too many config_url hops \(more than 2\)/);
  });

  it("stops reading a config_url body past 4 MiB", async () => {
    const r = await loadSource(`${base}/endless.yaml`, { fetch: { ...fast, attempts: 1 } });
    assert.equal(r.configs.length, 0);
    assert.match(r.errors[0]!.message, /larger than 4194304 bytes/);
  });

  it("skips a fetched config without header and rejects an invalid one", async () => {
    const a = await loadSource(`${base}/noheader.yaml`, { fetch: fast });
    assert.equal(a.configs.length, 0);
    assert.match(a.notes[0]!.message, /no #cloud-config header/);
    const b = await loadSource(`${base}/bad.yaml`, { fetch: fast });
    assert.equal(
      b.errors[0]!.message,
      `${base}/bad.yaml:3:11: install.reboot: expected true or false, got "maybe"`,
    );
  });

  it("refuses a config directory symlinked out of the root", async () => {
    const r = mkdtempSync(join(root, "escape-"));
    const outside = mkdtempSync(join(root, "outside-"));
    writeFileSync(join(outside, "x.yaml"), "#cloud-config\nusers:\n- name: intruder\n");
    symlinkSync("../../../../../../../../.." + outside, join(r, "oem"));
    const c = await collectConfig({ root: r, cmdline: false });
    assert.deepEqual(c.merged.value, {});
    assert.ok(
      c.errors.some((e) => /points outside/.test(e.message)),
      c.errors.map((e) => e.message).join("\n"),
    );
  });

  it("reads an absolute symlink inside the root relative to the root", async () => {
    const r = mkdtempSync(join(root, "abslink-"));
    put(`${r.slice(root.length + 1)}/data/cfg/x.yaml`, "#cloud-config\nusers:\n- name: linked\n");
    symlinkSync("/data/cfg", join(r, "oem"));
    const c = await collectConfig({ root: r, cmdline: false });
    assert.deepEqual(c.merged.value, { users: [{ name: "linked" }] });
  });
});
