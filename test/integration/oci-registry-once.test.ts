/**
 * Each blob is fetched from a registry at most once per command: `kairos build iso` and
 * `kairos auroraboot` from docker:// of a Kairos image (labelled by kairos init, and one
 * made the Dockerfile way with no label) and of a base image (init on the fly), against the
 * real registry behind a proxy that counts the bytes of every blob GET.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir } from "node:fs/promises";
import http from "node:http";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { ensureAgent, kairosInit } from "../../src/factory/index.js";
import {
  appendLayer,
  editConfig,
  emptyImage,
  type Image,
  openImage,
  writeImage,
} from "../../src/oci/index.js";
import { layerTar } from "../helpers/layers.js";
import { startRegistry, type TestRegistry } from "../helpers/registry.js";
import { chunked, tempDir } from "../helpers/tmp.js";
import { DEB_KVER, debianTree, makeDir } from "../unit/factory/trees.js";

const KAIROS = join(import.meta.dirname, "../../bin/kairos");

async function kairos(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(KAIROS, args, {
      env: { ...process.env, KAIROS_DEBUG: "" },
      maxBuffer: 64 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/** A pass-through proxy in front of the registry that counts the body bytes of each blob GET. */
async function countingProxy(target: string): Promise<{
  host: string;
  blobs: Map<string, { gets: number; bytes: number }>;
  close(): Promise<void>;
}> {
  const blobs = new Map<string, { gets: number; bytes: number }>();
  const upstream = new URL(target);
  const server = http.createServer((req, res) => {
    const m = /^\/v2\/.+\/blobs\/(sha256:[0-9a-f]{64})$/.exec(req.url ?? "");
    const fwd = http.request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (m && req.method === "GET") {
          const c = blobs.get(m[1]!) ?? { gets: 0, bytes: 0 };
          c.gets++;
          blobs.set(m[1]!, c);
          up.on("data", (chunk: Buffer) => {
            c.bytes += chunk.length;
          });
        }
        up.pipe(res);
      },
    );
    fwd.on("error", () => res.destroy());
    req.pipe(fwd);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return {
    host: `127.0.0.1:${port}`,
    blobs,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** Every blob of the image (config and layers), by digest, with its size. */
async function blobsOf(image: Image): Promise<Map<string, number>> {
  const m = await image.manifest();
  return new Map([m.config, ...m.layers].map((d) => [d.digest, d.size]));
}

describe("one fetch per blob per command (registry behind a counting proxy)", {
  timeout: 15 * 60_000,
}, () => {
  let reg: TestRegistry;
  let proxy: Awaited<ReturnType<typeof countingProxy>>;
  const refs: Record<string, string> = {};
  const blobs: Record<string, Map<string, number>> = {};
  let cleanupTree: () => Promise<void>;

  before(async () => {
    reg = await startRegistry();
    proxy = await countingProxy(reg.url);
    const agent = await ensureAgent(false);
    const tree = await makeDir(debianTree());
    cleanupTree = tree.cleanup;
    // The base: the tree plus a gzip layer on top, so the scan crosses a layer boundary.
    const dir = await openImage(`dir:${tree.root}`);
    const extra = await layerTar([{ path: "srv" }, { path: "srv/hello", content: "hello\n" }]);
    const base = await appendLayer(dir, chunked(extra, 512));
    await writeImage(base, `docker://${reg.host}/base:1`);
    await base.close();
    await dir.close();
    await kairosInit(`docker://${reg.host}/base:1`, `docker://${reg.host}/kairos:1`, { agent });
    // The Dockerfile way (RUN kairos-init): no label, kairos-release and initrd in the top layer.
    const top = await layerTar([
      { path: "etc" },
      { path: "etc/kairos-release", content: "KAIROS_NAME=seed\nKAIROS_VERSION=v1\n" },
      { path: "boot" },
      { path: `boot/initrd-${DEB_KVER}`, content: "INITRD" },
      { path: "boot/initrd", type: "symlink", linkname: `initrd-${DEB_KVER}` },
    ]);
    const b2 = await openImage(`docker://${reg.host}/base:1`);
    const seed = await appendLayer(b2, chunked(top, 512));
    await writeImage(seed, `docker://${reg.host}/seed:1`);
    await seed.close();
    // Labelled Kairos but without a kernel: the build must fail, and publish nothing.
    const liar = await appendLayer(
      await editConfig(emptyImage(), { labels: { "io.kairos.framework": "kairos-ts test" } }),
      chunked(
        await layerTar([{ path: "etc" }, { path: "etc/kairos-release", content: "KAIROS_NAME=x\n" }]),
        512,
      ),
    );
    await writeImage(liar, `docker://${reg.host}/liar:1`);
    for (const name of ["base", "kairos", "seed", "liar"]) {
      refs[name] = `docker://${proxy.host}/${name}:1`;
      const img = await openImage(`docker://${reg.host}/${name}:1`);
      blobs[name] = await blobsOf(img);
      await img.close();
    }
  });
  after(async () => {
    await proxy?.close();
    await reg?.stop();
    await cleanupTree?.();
  });

  /** Run a command and check each blob of `image` was fetched exactly once, in full. */
  async function once(image: string, args: string[]): Promise<string> {
    proxy.blobs.clear();
    const r = await kairos(args);
    assert.equal(r.code, 0, r.stderr);
    for (const [digest, size] of blobs[image]!) {
      const c = proxy.blobs.get(digest);
      assert.ok(c, `${image}: blob ${digest} was not fetched`);
      assert.deepEqual(c, { gets: 1, bytes: size }, `${image}: blob ${digest} (${size} bytes)`);
    }
    return r.stderr;
  }

  it("build iso of a Kairos image (label): every blob once", async (t) => {
    const out = await tempDir(t);
    const log = await once("kairos", ["build", "iso", refs.kairos!, "-o", out]);
    assert.match(log, /Kairos image \(label io\.kairos\.framework/);
    assert.equal((await readdir(out)).filter((f) => f.endsWith(".iso")).length, 1);
  });

  it("build iso of a Kairos image made the Dockerfile way (no label): every blob once", async (t) => {
    const out = await tempDir(t);
    const log = await once("seed", ["build", "iso", refs.seed!, "-o", out]);
    assert.match(log, /Kairos image \(\/etc\/kairos-release\)/);
    assert.equal((await readdir(out)).filter((f) => f.endsWith(".iso")).length, 1);
  });

  it("build iso of a base image (kairos init on the fly): every blob once", async (t) => {
    const out = await tempDir(t);
    const log = await once("base", ["build", "iso", refs.base!, "-o", out]);
    assert.match(log, /applying kairos init on the fly/);
    assert.equal((await readdir(out)).filter((f) => f.endsWith(".iso")).length, 1);
  });

  it("kairos init of a base image from docker:// (check, initramfs, copy of its layers): every blob once", async (t) => {
    const out = await tempDir(t);
    const log = await once("base", ["init", refs.base!, "-o", `oci:${out}/layout:latest`]);
    assert.match(log, /initramfs: .* modules/);
    const img = await openImage(`oci:${out}/layout:latest`);
    try {
      const layers = (await img.manifest()).layers.map((d) => d.digest);
      // The base's layers, untouched, plus the framework layer.
      assert.deepEqual(layers.slice(0, -1), [...blobs.base!.keys()].slice(1));
    } finally {
      await img.close();
    }
  });

  it("auroraboot --set container_image=docker://… of a Kairos image: every blob once", async (t) => {
    const state = await tempDir(t);
    await once("kairos", [
      "auroraboot",
      "--set",
      `container_image=${refs.kairos}`,
      "--set",
      `state_dir=${state}`,
      "--set",
      "disable_http_server=true",
      "--set",
      "disable_netboot=true",
    ]);
    assert.equal((await readdir(join(state, "iso"))).filter((f) => f.endsWith(".iso")).length, 1);
  });

  it("a Kairos label on an image without a kernel fails in the build, before the ISO is published", async (t) => {
    const out = await tempDir(t);
    const r = await kairos(["build", "iso", refs.liar!, "-o", out]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /the image has no kernel/);
    assert.deepEqual(await readdir(out), []);
  });
});
