import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import {
  appendLayer,
  type BuiltImage,
  copyImage,
  copyIndex,
  DigestMismatchError,
  editConfig,
  MediaType,
  openImage,
  parseCreds,
  registryFor,
  sha256,
  writeImage,
} from "../../src/oci/index.js";
import type { Progress } from "../../src/sys/index.js";
import { run } from "../../src/sys/index.js";
import { readTar } from "../../src/tar/index.js";
import { layerTar } from "../helpers/layers.js";
import { startRegistry, type TestRegistry } from "../helpers/registry.js";
import { tempDir } from "../helpers/tmp.js";
import { twoLayerImage } from "../unit/oci/fixtures.js";

/** A Progress that records each task's end note. */
function recorder(): Progress & { notes: string[] } {
  const notes: string[] = [];
  return {
    mode: "silent",
    notes,
    info() {},
    task: (name) => ({
      update() {},
      finish: (n) => notes.push(`${name}: ${n ?? "done"}`),
      fail: (r) => notes.push(`${name}: FAIL ${r}`),
    }),
  };
}

async function layerEntries(ref: string, opts = {}): Promise<string[][]> {
  const img = await openImage(ref, opts);
  const out: string[][] = [];
  for (const l of await img.layers()) {
    const names: string[] = [];
    for await (const e of readTar(await l.uncompressed())) names.push(e.path);
    out.push(names);
  }
  return out;
}

const NOTLS = ["--src-tls-verify=false"];

describe("registry (anonymous)", () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry();
  });
  after(() => reg?.stop());

  it("pushes an image skopeo reads byte for byte, and umoci unpacks with the whiteout applied", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    const digest = await writeImage(img, `docker://${reg.host}/test/two:1`);
    assert.equal(digest, await img.digest());
    const { stdout } = await run("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${reg.host}/test/two:1`,
    ]);
    assert.deepEqual(Buffer.from(stdout), await img.rawManifest());
    await run("skopeo", ["copy", "-q", ...NOTLS, `docker://${reg.host}/test/two:1`, `oci:${dir}/layout:t`]);
    await run("umoci", ["unpack", "--rootless", "--image", `${dir}/layout:t`, `${dir}/bundle`]);
    assert.deepEqual((await readdir(`${dir}/bundle/rootfs/etc`)).sort(), ["b", "c"]);
    assert.equal(await readFile(`${dir}/bundle/rootfs/etc/c`, "utf8"), "charlie\n");
  });

  it("pulls an image that umoci built and skopeo pushed", async (t) => {
    const dir = await tempDir(t);
    const L = `${dir}/umoci`;
    await run("umoci", ["init", "--layout", L]);
    await run("umoci", ["new", "--image", `${L}:t`]);
    await run("umoci", ["unpack", "--rootless", "--image", `${L}:t`, `${dir}/b`]);
    await writeFile(`${dir}/b/rootfs/hello`, "from umoci\n");
    await run("umoci", ["repack", "--image", `${L}:t`, `${dir}/b`]);
    await run("skopeo", [
      "copy",
      "-q",
      "--dest-tls-verify=false",
      `oci:${L}:t`,
      `docker://${reg.host}/umoci/img:t`,
    ]);
    const entries = await layerEntries(`docker://${reg.host}/umoci/img:t`);
    assert.ok(entries.flat().includes("hello"), JSON.stringify(entries));
    await copyImage(`docker://${reg.host}/umoci/img:t`, `oci:${dir}/ours:t`);
    const { stdout } = await run("skopeo", ["inspect", "--raw", `oci:${dir}/ours:t`]);
    const { stdout: theirs } = await run("skopeo", ["inspect", "--raw", `oci:${L}:t`]);
    assert.equal(stdout, theirs);
  });

  it("reads Docker schema 2 images (pushed by skopeo --format v2s2) and appends layers in Docker media types", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `oci:${dir}/src:t`);
    await run("skopeo", [
      "copy",
      "-q",
      "--format",
      "v2s2",
      "--dest-tls-verify=false",
      `oci:${dir}/src:t`,
      `docker://${reg.host}/v2s2/img:1`,
    ]);
    const d = await openImage(`docker://${reg.host}/v2s2/img:1`);
    assert.equal(d.mediaType(), MediaType.DOCKER_MANIFEST);
    assert.ok((await d.layers()).every((l) => l.mediaType === MediaType.DOCKER_LAYER_GZIP));
    const extra = await layerTar([{ path: "opt/added", content: "added\n" }]);
    const more = await appendLayer(d, Readable.from([extra]));
    t.after(() => more.close());
    assert.equal((await more.layers()).at(-1)!.mediaType, MediaType.DOCKER_LAYER_GZIP);
    await writeImage(more, `docker://${reg.host}/v2s2/img:2`);
    const { stdout } = await run("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${reg.host}/v2s2/img:2`,
    ]);
    const m = JSON.parse(stdout);
    assert.equal(m.mediaType, MediaType.DOCKER_MANIFEST);
    assert.equal(m.layers.length, 3);
    await run("skopeo", [
      "copy",
      "-q",
      "--src-tls-verify=false",
      `docker://${reg.host}/v2s2/img:2`,
      `oci:${dir}/out:t`,
    ]);
    await run("umoci", ["unpack", "--rootless", "--image", `${dir}/out:t`, `${dir}/b`]);
    assert.equal(await readFile(`${dir}/b/rootfs/opt/added`, "utf8"), "added\n");
  });

  it("skips blobs that exist and mounts blobs from another repository of the same registry", async (t) => {
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `docker://${reg.host}/mount/src:1`);
    const src = await openImage(`docker://${reg.host}/mount/src:1`);
    const p1 = recorder();
    await writeImage(src, `docker://${reg.host}/mount/dst:1`, { progress: p1 });
    assert.equal(p1.notes.filter((n) => n.endsWith("mounted from mount/src")).length, 2, p1.notes.join("\n"));
    const p2 = recorder();
    await writeImage(src, `docker://${reg.host}/mount/dst:2`, { progress: p2 });
    assert.equal(p2.notes.filter((n) => n.endsWith("already there")).length, 2, p2.notes.join("\n"));
  });

  it("uploads in chunks (PATCH) when asked", async (t) => {
    const tar = await layerTar([{ path: "big", content: randomBytes(400_000).toString("base64") }]);
    const img = await appendLayer(await twoLayerImage(), Readable.from([tar]));
    t.after(() => img.close());
    await writeImage(img, `docker://${reg.host}/chunked/img:1`, { chunkSize: 64 * 1024 });
    const back = await openImage(`docker://${reg.host}/chunked/img:1`);
    assert.equal(await back.digest(), await img.digest());
    const dir = await tempDir(t);
    await run("skopeo", ["copy", "-q", ...NOTLS, `docker://${reg.host}/chunked/img:1`, `oci:${dir}:x`]);
  });

  it("selects a platform from an index and lists the available ones otherwise", async (t) => {
    const base = await twoLayerImage();
    t.after(() => base.close());
    const arm = await editConfig(base, { platform: { os: "linux", architecture: "arm64", variant: "v8" } });
    const d1 = await writeImage(base, `docker://${reg.host}/multi/img:amd64`);
    const d2 = await writeImage(arm, `docker://${reg.host}/multi/img:arm64`);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OCI_INDEX,
        manifests: [
          {
            mediaType: MediaType.OCI_MANIFEST,
            digest: d1,
            size: (await base.rawManifest()).length,
            platform: { os: "linux", architecture: "amd64" },
          },
          {
            mediaType: MediaType.OCI_MANIFEST,
            digest: d2,
            size: (await arm.rawManifest()).length,
            platform: { os: "linux", architecture: "arm64", variant: "v8" },
          },
        ],
      }),
    );
    await registryFor(reg.host).putManifest("multi/img", "all", index, MediaType.OCI_INDEX, "index");
    const a = await openImage(`docker://${reg.host}/multi/img:all`);
    assert.equal(await a.digest(), d1);
    assert.deepEqual((a as BuiltImage).index, {
      digest: sha256(index),
      mediaType: MediaType.OCI_INDEX,
      platforms: ["linux/amd64", "linux/arm64/v8"],
    });
    const b = await openImage(`docker://${reg.host}/multi/img:all`, {
      platform: { os: "linux", architecture: "arm64" },
    });
    assert.equal(await b.digest(), d2);
    assert.equal((await b.config()).architecture, "arm64");
    await assert.rejects(
      openImage(`docker://${reg.host}/multi/img:all`, { platform: { os: "linux", architecture: "s390x" } }),
      (e: Error & { hint?: string }) =>
        /no image for platform linux\/s390x/.test(e.message) &&
        /linux\/amd64, linux\/arm64\/v8/.test(e.hint ?? ""),
    );
    // the same index copied by skopeo --all into an OCI layout
    const dir = await tempDir(t);
    await run("skopeo", [
      "copy",
      "-q",
      "--all",
      ...NOTLS,
      `docker://${reg.host}/multi/img:all`,
      `oci:${dir}:all`,
    ]);
    const fromLayout = await openImage(`oci:${dir}:all`, {
      platform: { os: "linux", architecture: "arm64" },
    });
    assert.equal(await fromLayout.digest(), d2);
    assert.deepEqual((fromLayout as BuiltImage).index?.platforms, ["linux/amd64", "linux/arm64/v8"]);
    // and by digest, with the manifest checked against it
    const byDigest = await openImage(`docker://${reg.host}/multi/img@${d2}`);
    assert.equal(await byDigest.digest(), d2);
  });

  it("copies a whole index (--all) through oci:, oci-archive: and back to a registry, byte for byte", async (t) => {
    const dir = await tempDir(t);
    const base = await twoLayerImage();
    t.after(() => base.close());
    const arm = await editConfig(base, { platform: { os: "linux", architecture: "arm64" } });
    const d1 = await writeImage(base, `docker://${reg.host}/all/img:amd64`);
    const d2 = await writeImage(arm, `docker://${reg.host}/all/img:arm64`);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OCI_INDEX,
        manifests: [
          {
            mediaType: MediaType.OCI_MANIFEST,
            digest: d1,
            size: (await base.rawManifest()).length,
            platform: { os: "linux", architecture: "amd64" },
          },
          {
            mediaType: MediaType.OCI_MANIFEST,
            digest: d2,
            size: (await arm.rawManifest()).length,
            platform: { os: "linux", architecture: "arm64" },
          },
        ],
      }),
    );
    await registryFor(reg.host).putManifest("all/img", "both", index, MediaType.OCI_INDEX, "index");
    const skRaw = async (ref: string) =>
      (
        await run("skopeo", [
          "inspect",
          "--raw",
          ...(ref.startsWith("docker:") ? ["--tls-verify=false"] : []),
          ref,
        ])
      ).stdout;
    const r1 = await copyIndex(`docker://${reg.host}/all/img:both`, `oci:${dir}/layout:both`);
    assert.equal(r1.digest, sha256(index));
    assert.equal(await skRaw(`oci:${dir}/layout:both`), index.toString());
    assert.equal(
      await (
        await openImage(`oci:${dir}/layout:both`, { platform: { os: "linux", architecture: "arm64" } })
      ).digest(),
      d2,
    );
    await copyIndex(`oci:${dir}/layout:both`, `oci-archive:${dir}/all.tar:both`);
    assert.equal(await skRaw(`oci-archive:${dir}/all.tar:both`), index.toString());
    await copyIndex(`oci-archive:${dir}/all.tar:both`, `docker://${reg.host}/all/copy:both`);
    assert.equal(await skRaw(`docker://${reg.host}/all/copy:both`), index.toString());
    // skopeo can copy every platform out of what we wrote
    await run("skopeo", ["copy", "-q", "--all", `oci-archive:${dir}/all.tar:both`, `oci:${dir}/sk:both`]);
    await assert.rejects(
      copyIndex(`docker://${reg.host}/all/img:amd64`, `oci:${dir}/x`),
      /is a single image, not a multi-platform index/,
    );
    await assert.rejects(
      copyIndex(`docker://${reg.host}/all/img:both`, `docker-archive:${dir}/x.tar`),
      /--all writes to docker:\/\/, oci: and oci-archive: only/,
    );
    await assert.rejects(stat(`${dir}/x`), /ENOENT/);
  });

  it("refuses a blob the registry serves corrupted, leaving no destination behind", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `docker://${reg.host}/corrupt/img:1`);
    const layer = (await img.layers())[1]!;
    const hex = layer.digest.slice(7);
    const data = join(reg.storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    const bytes = await readFile(data);
    bytes[10]! ^= 0xff;
    await writeFile(data, bytes);
    await assert.rejects(copyImage(`docker://${reg.host}/corrupt/img:1`, `oci:${dir}/out`), (e: unknown) => {
      return e instanceof DigestMismatchError && e.message.includes(layer.digest);
    });
    await assert.rejects(stat(`${dir}/out`), /ENOENT/);
  });

  it("an abort during a pull removes the partial layout", async (t) => {
    const dir = await tempDir(t);
    const tar = await layerTar([{ path: "big", content: randomBytes(3_000_000).toString("base64") }]);
    const img = await appendLayer(await twoLayerImage(), Readable.from([tar]));
    t.after(() => img.close());
    await writeImage(img, `docker://${reg.host}/abort/img:1`);
    const ac = new AbortController();
    const progress: Progress = {
      mode: "silent",
      info() {},
      task: () => ({
        update: (n) => {
          if (n > 0) ac.abort(new Error("stop now"));
        },
        finish() {},
        fail() {},
      }),
    };
    await assert.rejects(
      copyImage(`docker://${reg.host}/abort/img:1`, `oci:${dir}/out`, { signal: ac.signal, progress }),
      /stop now|abort/i,
    );
    await assert.rejects(stat(`${dir}/out`), /ENOENT/);
  });

  it("names the reference when an image or tag does not exist", async () => {
    await assert.rejects(openImage(`docker://${reg.host}/nope/nothing:1`), (e: Error & { hint?: string }) => {
      return (
        e.message.startsWith(`docker://${reg.host}/nope/nothing:1: not found`) &&
        /repository name and the tag/.test(e.hint ?? "")
      );
    });
    const img = await twoLayerImage();
    await writeImage(img, `docker://${reg.host}/exists/img:1`);
    await img.close();
    await assert.rejects(
      openImage(`docker://${reg.host}/exists/img:2`),
      /exists\/img:2: not found.*MANIFEST_UNKNOWN/,
    );
  });

  it("names the registry when it cannot be reached", async () => {
    await assert.rejects(openImage("docker://127.0.0.1:9/x/y:1"), (e: Error & { hint?: string }) => {
      return (
        /cannot reach registry 127.0.0.1:9 \(https: ECONNREFUSED; http: ECONNREFUSED\)/.test(e.message) &&
        /registry is running/.test(e.hint ?? "")
      );
    });
  });
});

describe("registry (htpasswd basic auth)", () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry({ auth: "htpasswd", user: "kairos", password: "s3cret" });
  });
  after(() => reg?.stop());

  it("pushes and pulls with --creds; skopeo reads it with the same credentials", async (t) => {
    const img = await twoLayerImage();
    t.after(() => img.close());
    const creds = parseCreds("kairos:s3cret");
    await writeImage(img, `docker://${reg.host}/auth/img:1`, { creds });
    const back = await openImage(`docker://${reg.host}/auth/img:1`, { creds });
    assert.equal(await back.digest(), await img.digest());
    const { stdout } = await run("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      "--creds",
      "kairos:s3cret",
      `docker://${reg.host}/auth/img:1`,
    ]);
    assert.equal(sha256(stdout), await img.digest());
  });

  it("reads credentials from $DOCKER_CONFIG/config.json", async (t) => {
    const dir = await tempDir(t);
    await writeFile(
      join(dir, "config.json"),
      JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from("kairos:s3cret").toString("base64") } } }),
    );
    const old = process.env.DOCKER_CONFIG;
    process.env.DOCKER_CONFIG = dir;
    t.after(() => {
      if (old === undefined) delete process.env.DOCKER_CONFIG;
      else process.env.DOCKER_CONFIG = old;
    });
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `docker://${reg.host}/auth/fromfile:1`, {});
  });

  it("says credentials are needed, or wrong", async () => {
    await assert.rejects(
      openImage(`docker://${reg.host}/auth/img:1`, { creds: undefined }),
      (e: Error & { hint?: string }) => {
        return /access to .*auth\/img denied \(HTTP 401/.test(e.message) && /--creds/.test(e.hint ?? "");
      },
    );
    await assert.rejects(
      openImage(`docker://${reg.host}/auth/img:1`, { creds: parseCreds("kairos:wrong") }),
      /denied \(HTTP 401/,
    );
  });
});

describe("registry (bearer tokens from a token server)", () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry({ auth: "token", user: "tok", password: "pw" });
  });
  after(() => reg?.stop());

  it("gets scoped tokens for push and pull", async (t) => {
    const img = await twoLayerImage();
    t.after(() => img.close());
    const creds = parseCreds("tok:pw");
    await writeImage(img, `docker://${reg.host}/tok/img:1`, { creds });
    const back = await openImage(`docker://${reg.host}/tok/img:1`, { creds });
    assert.equal(await back.digest(), await img.digest());
    assert.ok(reg.tokenRequests() >= 2, `token requests: ${reg.tokenRequests()}`);
    const { stdout } = await run("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      "--creds",
      "tok:pw",
      `docker://${reg.host}/tok/img:1`,
    ]);
    assert.equal(sha256(stdout), await img.digest());
  });

  it("reports failed authentication at the token server", async () => {
    await assert.rejects(
      openImage(`docker://${reg.host}/tok/img:1`, { creds: parseCreds("tok:bad") }),
      (e: Error & { hint?: string }) => {
        return (
          /authentication to registry .* failed \(HTTP 401/.test(e.message) &&
          /user name and password/.test(e.hint ?? "")
        );
      },
    );
  });
});

describe("registry over HTTPS with a self-signed certificate", () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry({ tls: true });
  });
  after(() => reg?.stop());

  it("refuses the certificate by default and never downgrades to plain HTTP silently", async () => {
    await assert.rejects(openImage(`docker://${reg.host}/tls/img:1`), (e: Error & { hint?: string }) => {
      return (
        /cannot reach registry .*https: (DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED)/.test(e.message) &&
        /--insecure/.test(e.hint ?? "")
      );
    });
  });

  it("works over HTTPS with --insecure", async (t) => {
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `docker://${reg.host}/tls/img:1`, { insecure: true });
    const back = await openImage(`docker://${reg.host}/tls/img:1`, { insecure: true });
    assert.equal(await back.digest(), await img.digest());
    const { stdout } = await run("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${reg.host}/tls/img:1`,
    ]);
    assert.equal(sha256(stdout), await img.digest());
  });
});
