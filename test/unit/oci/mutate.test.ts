import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";
import { AutoDecompress } from "../../../src/oci/compression.js";
import { sha256 } from "../../../src/oci/digest.js";
import { appendLayer, editConfig, emptyImage } from "../../../src/oci/mutate.js";
import { MediaType } from "../../../src/oci/types.js";
import { run } from "../../../src/sys/index.js";
import { layerTar } from "../../helpers/layers.js";
import { collect, tempDir } from "../../helpers/tmp.js";
import { twoLayerImage } from "./fixtures.js";

describe("appendLayer", () => {
  it("computes diff id, gzip digest and size in one pass and updates config and manifest", async (t) => {
    const tar = await layerTar([{ path: "opt" }, { path: "opt/x", content: "x".repeat(100_000) }]);
    const base = emptyImage();
    const img = await appendLayer(base, Readable.from([tar]), { history: { created_by: "test" } });
    t.after(() => img.close());
    const [layer] = await img.layers();
    const blob = await collect(await layer!.compressed());
    assert.equal(layer!.digest, sha256(blob));
    assert.equal(layer!.size, blob.length);
    assert.equal(layer!.diffId, sha256(tar));
    assert.deepEqual(gunzipSync(blob), tar);
    assert.equal(layer!.mediaType, MediaType.OCI_LAYER_GZIP);
    const cfg = await img.config();
    assert.deepEqual(cfg.rootfs.diff_ids, [sha256(tar)]);
    assert.equal(cfg.history?.at(-1)?.created_by, "test");
    const m = await img.manifest();
    assert.equal(m.config.digest, sha256(await img.rawConfig()));
    assert.equal(m.layers[0]!.digest, layer!.digest);
    assert.equal(await img.digest(), sha256(await img.rawManifest()));
  });

  it("removes its temp file on close", async () => {
    const img = await twoLayerImage();
    const layer = (await img.layers())[1]!;
    assert.equal((await collect(await layer.compressed())).length, layer.size);
    await img.close();
    await assert.rejects(async () => collect(await layer.compressed()), /ENOENT/);
  });

  it("fails cleanly when the tar stream fails", async () => {
    async function* broken() {
      yield Buffer.alloc(512);
      throw new Error("source broke");
    }
    await assert.rejects(appendLayer(emptyImage(), broken()), /source broke/);
  });
});

describe("editConfig", () => {
  it("replaces env vars by name, merges labels, sets entrypoint/cmd/platform without copying layers", async (t) => {
    const img = await twoLayerImage();
    t.after(() => img.close());
    const a = await editConfig(img, { env: ["PATH=/usr/bin", "A=1"], labels: { x: "1" } });
    const b = await editConfig(a, {
      env: ["A=2"],
      labels: { y: "2" },
      entrypoint: ["/sbin/init"],
      cmd: null,
      platform: { os: "linux", architecture: "arm64", variant: "v8" },
    });
    const c = await b.config();
    assert.deepEqual(c.config?.Env, ["PATH=/usr/bin", "A=2"]);
    assert.deepEqual(c.config?.Labels, { x: "1", y: "2" });
    assert.deepEqual(c.config?.Entrypoint, ["/sbin/init"]);
    assert.equal(c.config?.Cmd, null);
    assert.equal(c.architecture, "arm64");
    assert.equal(c.variant, "v8");
    assert.deepEqual(
      (await b.layers()).map((l) => l.digest),
      (await img.layers()).map((l) => l.digest),
    );
    assert.equal((await b.manifest()).config.digest, sha256(await b.rawConfig()));
    await assert.rejects(editConfig(img, { env: ["NOEQUALS"] }), /invalid environment entry/);
  });
});

describe("AutoDecompress", () => {
  const plain = Buffer.from("hello layer ".repeat(5000));
  const through = async (b: Buffer) =>
    collect(Readable.from([b.subarray(0, 3), b.subarray(3)]).pipe(new AutoDecompress()));
  it("passes plain data through", async () => assert.deepEqual(await through(plain), plain));
  it("gunzips", async () => assert.deepEqual(await through(gzipSync(plain)), plain));
  it("decompresses zstd (fzstd) from the zstd tool", async (t) => {
    const dir = await tempDir(t);
    const { writeFile, readFile } = await import("node:fs/promises");
    await writeFile(`${dir}/p`, plain);
    await run("zstd", ["-q", "-3", `${dir}/p`, "-o", `${dir}/p.zst`]);
    assert.deepEqual(await through(await readFile(`${dir}/p.zst`)), plain);
  });
  it("fails on corrupt gzip", async () => {
    const gz = gzipSync(plain);
    gz[gz.length - 6]! ^= 0xff;
    await assert.rejects(through(gz));
  });
  it("handles tiny inputs", async () =>
    assert.deepEqual(await through(Buffer.from("ab")), Buffer.from("ab")));
});
