/**
 * `kairos auroraboot` end to end on the host (no VM): AuroraBoot's --set keys, an image read
 * from an OCI layout, the ISO + netboot files in the state dir, the HTTP server with byte
 * ranges, and a clean exit on Ctrl-C (SIGINT).
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { FIXTURE_KERNEL, writeFixtureTar } from "../helpers/rootfs-fixture.js";
import { tempDir } from "../helpers/tmp.js";

const KAIROS = resolve(import.meta.dirname, "../../bin/kairos");

function kairos(args: string[]) {
  return spawnSync(KAIROS, args, { encoding: "utf8" });
}

/** `kairos auroraboot ARGS` as a server: wait for a stderr line, stop it with SIGINT. */
function serveAuroraBoot(t: { after(fn: () => void): void }, args: string[]) {
  const child: ChildProcess = spawn(KAIROS, ["auroraboot", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  t.after(() => child.kill("SIGKILL"));
  let stderr = "";
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return {
    stderr: () => stderr,
    /** The first capture of `re` in stderr, once it appears (fails after 120 s or an early exit). */
    async waitFor(re: RegExp): Promise<string> {
      const deadline = Date.now() + 120_000;
      for (;;) {
        const m = re.exec(stderr)?.[1];
        if (m) return m;
        if (Date.now() > deadline) assert.fail(`no ${re} from auroraboot:\n${stderr}`);
        if (child.exitCode !== null) assert.fail(`auroraboot exited early:\n${stderr}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    /** Ctrl-C, then the exit code. */
    async interrupt(): Promise<number | null> {
      child.kill("SIGINT");
      return exited;
    },
  };
}

/** An OCI image layout with the fixture rootfs as its single (uncompressed) layer. */
async function fixtureLayout(dir: string, opts: Parameters<typeof writeFixtureTar>[1] = {}): Promise<string> {
  const layout = join(dir, "layout");
  const blobs = join(layout, "blobs", "sha256");
  mkdirSync(blobs, { recursive: true });
  const tar = join(dir, "layer.tar");
  await writeFixtureTar(tar, opts);
  const put = (data: Buffer) => {
    const d = createHash("sha256").update(data).digest("hex");
    writeFileSync(join(blobs, d), data);
    return { digest: `sha256:${d}`, size: data.length };
  };
  const layer = put(readFileSync(tar));
  const config = put(
    Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: {},
        rootfs: { type: "layers", diff_ids: [layer.digest] },
      }),
    ),
  );
  const manifest = put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        config: { mediaType: "application/vnd.oci.image.config.v1+json", ...config },
        layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", ...layer }],
      }),
    ),
  );
  writeFileSync(join(layout, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  writeFileSync(
    join(layout, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          ...manifest,
          annotations: { "org.opencontainers.image.ref.name": "latest" },
        },
      ],
    }),
  );
  return layout;
}

test("unknown --set keys and bad values are refused, listing the known keys", () => {
  const r = kairos(["auroraboot", "--set", "container_image=oci:/x", "--set", "iso.nmae=x"]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /error: unknown AuroraBoot key 'iso.nmae'/);
  assert.match(
    r.stderr,
    /hint: known keys: container_image, state_dir, disable_http_server, disable_netboot, cloud_config, iso.name/,
  );
  const b = kairos(["auroraboot", "--set", "container_image=oci:/x", "--set", "disable_netboot=perhaps"]);
  assert.equal(b.status, 1);
  assert.match(b.stderr, /disable_netboot=perhaps: not a boolean/);
  const n = kairos(["auroraboot", "--set", "state_dir=/tmp/x"]);
  assert.equal(n.status, 1);
  assert.match(n.stderr, /no container_image set/);
  const kv = kairos(["auroraboot", "--set", "container_image"]);
  assert.match(kv.stderr, /is not key=value/);
  const name = kairos(["auroraboot", "--set", "container_image=oci:/x", "--set", "iso.name=../x"]);
  assert.equal(name.status, 1);
  assert.match(name.stderr, /not a plain file name/);
});

test("the seed's AuroraBoot command: ISO in state_dir/iso, no server, no netboot", async (t) => {
  const dir = await tempDir(t);
  const layout = await fixtureLayout(dir);
  const state = join(dir, "build");
  const cc = join(dir, "cc.yaml");
  writeFileSync(cc, "#cloud-config\nhostname: node-a\n");
  const r = kairos([
    "auroraboot",
    "--set",
    `container_image=oci:${layout}:latest`,
    "--set",
    "disable_http_server=true",
    "--set",
    "disable_netboot=true",
    "--set",
    `state_dir=${state}`,
    "--cloud-config",
    cc,
  ]);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(state), ["iso"]);
  assert.deepEqual(readdirSync(join(state, "iso")).sort(), [
    "config.yaml",
    "kairos.iso",
    "kairos.iso.sha256",
  ]);
  assert.equal(readFileSync(join(state, "iso", "config.yaml"), "utf8"), "#cloud-config\nhostname: node-a\n");
  assert.match(r.stderr, /Generating iso 'kairos'/);
});

test("netboot files, HTTP server with ranges, clean exit on Ctrl-C", async (t) => {
  const dir = await tempDir(t);
  const layout = await fixtureLayout(dir);
  const state = join(dir, "state");
  const ab = serveAuroraBoot(t, [
    "--set",
    `container_image=oci:${layout}`,
    "--set",
    `state_dir=${state}`,
    "--set",
    "listen_addr=127.0.0.1:0",
    "--set",
    "iso.name=node",
    "--set",
    "cloud_config=#cloud-config\nhostname: inline\n",
    "--set",
    "netboot.cmdline=install-mode",
    // The PXE server starts too: keep it on loopback (its UDP ports need root).
    "--set",
    "netboot_listen_addr=127.0.0.1",
    "--set",
    "netboot_http_port=0",
  ]);
  const url = await ab.waitFor(/Serving .* on (http:\/\/127\.0\.0\.1:\d+)/);
  const stderr = ab.stderr();
  assert.match(
    stderr,
    /netboot: ProxyDHCP .* on 127\.0\.0\.1, boots bios, uefi-x64; HTTP http:\/\/127\.0\.0\.1:\d+/,
  );
  assert.match(
    stderr,
    /kernel command line: root=live:http:\/\/127\.0\.0\.1:\d+\/node\.squashfs config_url=http:\/\/127\.0\.0\.1:\d+\/config\.yaml install-mode\n/,
  );
  assert.deepEqual(readdirSync(join(state, "netboot")).sort(), [
    "node-cmdline",
    "node-initrd",
    "node-kernel",
    "node.squashfs",
  ]);
  const cmdline = readFileSync(join(state, "netboot", "node-cmdline"), "utf8");
  assert.match(
    cmdline,
    /^root=live:http:\/\/\{\{ server \}\}:0\/netboot\/node.squashfs ip=dhcp rd.neednet=1 netboot .*install-mode\n$/,
  );
  assert.equal(readFileSync(join(state, "iso", "config.yaml"), "utf8"), "#cloud-config\nhostname: inline\n");

  const kernel = await fetch(`${url}/netboot/node-kernel`);
  assert.equal(kernel.status, 200);
  assert.deepEqual(Buffer.from(await kernel.arrayBuffer()), FIXTURE_KERNEL);
  const isoSize = statSync(join(state, "iso", "node.iso")).size;
  const range = await fetch(`${url}/iso/node.iso`, { headers: { Range: "bytes=32769-32773" } });
  assert.equal(range.status, 206);
  assert.equal(range.headers.get("content-range"), `bytes 32769-32773/${isoSize}`);
  assert.equal(Buffer.from(await range.arrayBuffer()).toString("latin1"), "CD001");
  const listing = await (await fetch(`${url}/`)).text();
  assert.equal(listing, "iso/\nnetboot/\n");

  assert.equal(await ab.interrupt(), 0, ab.stderr());
  assert.match(ab.stderr(), /http server stopped \(SIGINT\)/);
  assert.ok(existsSync(join(state, "iso", "node.iso")));
});

test("a base image without a kernel is refused by the contract check, pointing to kairos doctor", async (t) => {
  const dir = await tempDir(t);
  const layout = await fixtureLayout(dir, { kernel: false, kairosRelease: null });
  const out = join(dir, "out");
  const r = kairos(["build", "iso", `oci:${layout}:latest`, "-o", out]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /error: .*does not meet the Kairos contract: .*kernel/);
  assert.match(r.stderr, /kairos doctor/);
  assert.equal(existsSync(out), false, "nothing written");
});

test("AuroraBoot config file, disable_iso, [[ .key ]] values and the iso name keys", async (t) => {
  const dir = await tempDir(t);
  const layout = await fixtureLayout(dir);
  const state = join(dir, "state");
  const cfg = join(dir, "auroraboot.yaml");
  writeFileSync(
    cfg,
    [
      `container_image: oci:${layout}:latest`,
      `state_dir: ${state}`,
      "disable_http_server: true",
      "disable_iso: true",
      "iso:",
      "  name: edge",
      "cloud_config: |",
      "  #cloud-config",
      "  hostname: [[ .node_name ]]",
      "",
    ].join("\n"),
  );
  // disable_http_server with netboot on: the PXE server (on loopback) serves until Ctrl-C.
  const ab = serveAuroraBoot(t, [
    cfg,
    "--set",
    "node_name=edge-7",
    "--set",
    "netboot_listen_addr=127.0.0.1",
    "--set",
    "netboot_http_port=0",
  ]);
  const http = await ab.waitFor(/netboot: ProxyDHCP .* HTTP (http:\/\/127\.0\.0\.1:\d+)/);
  assert.deepEqual(readdirSync(state), ["netboot"], "no ISO with disable_iso");
  assert.deepEqual(readdirSync(join(state, "netboot")).sort(), [
    "config.yaml",
    "edge-cmdline",
    "edge-initrd",
    "edge-kernel",
    "edge.squashfs",
  ]);
  assert.equal(
    readFileSync(join(state, "netboot", "config.yaml"), "utf8"),
    "#cloud-config\nhostname: edge-7\n",
  );
  // The PXE server hands out the rendered config as config_url.
  const served = await fetch(`${http}/config.yaml`);
  assert.equal(served.status, 200);
  assert.equal(await served.text(), "#cloud-config\nhostname: edge-7\n");
  assert.match(ab.stderr(), /is the local OCI layout/);
  assert.equal(await ab.interrupt(), 0, ab.stderr());
});
