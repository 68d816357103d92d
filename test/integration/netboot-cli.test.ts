/**
 * `kairos netboot DIR` on loopback: it serves a netboot-files directory (no build), says where,
 * hands iPXE out over TFTP and the iPXE script over HTTP with `--cmdline` replacing our
 * command line, and stops cleanly on Ctrl-C. Bad options are refused before anything listens.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { tftpGet } from "../helpers/netboot-client.js";
import { FIXTURE_KERNEL, writeFixtureTar } from "../helpers/rootfs-fixture.js";
import { tempDir } from "../helpers/tmp.js";

const KAIROS = resolve(import.meta.dirname, "../../bin/kairos");
const LOOPBACK = [
  "--listen-addr",
  "127.0.0.1",
  "--http-port",
  "0",
  "--tftp-port",
  "0",
  "--dhcp-port",
  "0",
  "--pxe-port",
  "0",
];

test("kairos netboot DIR: TFTP, iPXE script with --cmdline, config, Ctrl-C", async (t) => {
  const dir = await tempDir(t);
  for (const f of ["node-kernel", "node-initrd", "node.squashfs"])
    await writeFile(join(dir, f), randomBytes(4096));
  await writeFile(join(dir, "cc.yaml"), "#cloud-config\nhostname: pxe\n");
  const child: ChildProcess = spawn(
    KAIROS,
    [
      "netboot",
      dir,
      "--name",
      "node",
      "--cloud-config",
      join(dir, "cc.yaml"),
      "--cmdline",
      "install-mode console=ttyS0",
      ...LOOPBACK,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  t.after(() => child.kill("SIGKILL"));
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const deadline = Date.now() + 30_000;
  while (!/netboot: ready/.test(stderr)) {
    if (Date.now() > deadline || child.exitCode !== null) assert.fail(`no ready line:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const http = /HTTP (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr)![1]!;
  const tftpPort = Number(/TFTP port (\d+)/.exec(stderr)![1]);
  assert.match(stderr, /ProxyDHCP \(addresses come from your DHCP server\) on 127\.0\.0\.1/);
  const got = await tftpGet({ host: "127.0.0.1", port: tftpPort, file: "undionly.kpxe" });
  assert.deepEqual(got.data, readFileSync("/usr/lib/ipxe/undionly.kpxe"));
  const script = await (await fetch(`${http}/boot.ipxe`)).text();
  assert.match(
    script,
    new RegExp(
      `kernel --name kernel ${http}/node-kernel initrd=initrd root=live:${http}/node.squashfs config_url=${http}/config.yaml install-mode console=ttyS0\n`,
    ),
  );
  assert.equal(await (await fetch(`${http}/config.yaml`)).text(), "#cloud-config\nhostname: pxe\n");
  child.kill("SIGINT");
  assert.equal(await exited, 0, stderr);
  assert.match(stderr, /netboot: stopped \(SIGINT\)/);
});

test("kairos netboot refuses a bad --dhcp-range and a missing cloud-config before listening", () => {
  const r = spawnSync(KAIROS, ["netboot", "/nonexistent", "--dhcp-range", "10.0.0.9,10.0.0.1", ...LOOPBACK], {
    encoding: "utf8",
  });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--dhcp-range '10\.0\.0\.9,10\.0\.0\.1' is not START,END/);
  const c = spawnSync(
    KAIROS,
    ["netboot", "/nonexistent", "--cloud-config", "/nonexistent.yaml", ...LOOPBACK],
    { encoding: "utf8" },
  );
  assert.equal(c.status, 1);
  assert.doesNotMatch(c.stderr, /netboot: ready/);
});

test("kairos netboot --rootfs-tar: netboot files built on the fly into --state-dir, then served", async (t) => {
  const dir = await tempDir(t);
  const tar = join(dir, "rootfs.tar");
  await writeFixtureTar(tar);
  const state = join(dir, "state");
  const child: ChildProcess = spawn(
    KAIROS,
    ["netboot", "--rootfs-tar", tar, "--state-dir", state, ...LOOPBACK],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  t.after(() => child.kill("SIGKILL"));
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  const deadline = Date.now() + 120_000;
  while (!/netboot: ready/.test(stderr)) {
    if (Date.now() > deadline || child.exitCode !== null) assert.fail(`no ready line:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.match(stderr, /netboot: building the netboot files in /);
  assert.deepEqual(readdirSync(state).sort(), [
    "kairos-cmdline",
    "kairos-initrd",
    "kairos-kernel",
    "kairos.squashfs",
  ]);
  const http = /HTTP (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr)![1]!;
  assert.deepEqual(Buffer.from(await (await fetch(`${http}/kairos-kernel`)).arrayBuffer()), FIXTURE_KERNEL);
  // No cloud-config: no config_url on the command line.
  assert.doesNotMatch(await (await fetch(`${http}/boot.ipxe`)).text(), /config_url/);
  child.kill("SIGTERM");
  assert.equal(await exited, 0, stderr);
  assert.ok(existsSync(join(state, "kairos.squashfs")), "--state-dir is kept");
});
