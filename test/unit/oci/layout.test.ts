import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { readdir, readFile, stat, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { createGunzip } from "node:zlib";
import {
  blobPath,
  copyImage,
  DigestMismatchError,
  editConfig,
  openImage,
  writeImage,
} from "../../../src/oci/index.js";
import { readTar, writeTar } from "../../../src/tar/index.js";
import { collect, tempDir } from "../../helpers/tmp.js";
import { twoLayerImage } from "./fixtures.js";

async function entriesOf(img: Awaited<ReturnType<typeof openImage>>, i: number): Promise<string[]> {
  const layer = (await img.layers())[i]!;
  const names: string[] = [];
  for await (const e of readTar(await layer.uncompressed())) names.push(e.path);
  return names;
}

describe("oci layout", () => {
  it("writes and reads back an image byte for byte", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    const digest = await writeImage(img, `oci:${dir}/layout:v1`);
    assert.equal(digest, await img.digest());
    const back = await openImage(`oci:${dir}/layout:v1`);
    assert.deepEqual(await back.rawManifest(), await img.rawManifest());
    assert.deepEqual(await back.rawConfig(), await img.rawConfig());
    assert.deepEqual(await entriesOf(back, 1), ["etc", "etc/.wh.a", "etc/c"]);
    const layer = (await back.layers())[0]!;
    assert.equal(await back.layerByDiffId(layer.diffId), layer);
    assert.equal(await back.layerByDigest(layer.digest), layer);
    // diffId really is the sha256 of the uncompressed tar
    const plain = await collect(await layer.uncompressed());
    const { sha256 } = await import("../../../src/oci/digest.js");
    assert.equal(sha256(plain), layer.diffId);
    const index = JSON.parse(await readFile(join(dir, "layout", "index.json"), "utf8"));
    assert.equal(index.manifests[0].annotations["org.opencontainers.image.ref.name"], "v1");
    assert.deepEqual(index.manifests[0].platform, { architecture: "amd64", os: "linux" });
  });

  it("adds a second tag to an existing layout and selects by tag", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `oci:${dir}:one`);
    await writeImage(img, `oci:${dir}:two`);
    await openImage(`oci:${dir}:two`);
    await assert.rejects(openImage(`oci:${dir}:three`), (e: Error & { hint?: string }) => {
      return /no image tagged 'three'/.test(e.message) && /one, two/.test(e.hint ?? "");
    });
    await assert.rejects(openImage(`oci:${dir}`), /several images/);
  });

  it("refuses a blob whose content differs from the manifest", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `oci:${dir}`);
    const layer = (await img.layers())[0]!;
    const p = join(dir, blobPath(layer.digest));
    const bytes = await readFile(p);
    bytes[bytes.length - 5]! ^= 0xff;
    await writeFile(p, bytes);
    const back = await openImage(`oci:${dir}`);
    await assert.rejects(collect(await (await back.layers())[0]!.compressed()), DigestMismatchError);
    // and copying it elsewhere leaves nothing behind
    await assert.rejects(copyImage(`oci:${dir}`, `oci:${dir}-copy`), DigestMismatchError);
    await assert.rejects(stat(`${dir}-copy`), /ENOENT/);
    await assert.rejects(copyImage(`oci:${dir}`, `oci-archive:${dir}.tar`), DigestMismatchError);
    await assert.rejects(stat(`${dir}.tar`), /ENOENT/);
    const parent = join(dir, "..");
    assert.ok(!(await readdir(parent)).some((n) => n.includes(".tar.tmp-")), "temp archive left behind");
  });

  it("refuses a manifest that is not JSON or has an unknown media type", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `oci:${dir}`);
    const mpath = join(dir, blobPath(await img.digest()));
    const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8"));
    // not JSON: rewrite the manifest blob and its descriptor
    const { sha256 } = await import("../../../src/oci/digest.js");
    const junk = Buffer.from("{not json");
    await writeFile(join(dir, blobPath(sha256(junk))), junk);
    index.manifests[0] = { ...index.manifests[0], digest: sha256(junk), size: junk.length };
    await writeFile(join(dir, "index.json"), JSON.stringify(index));
    await assert.rejects(openImage(`oci:${dir}`), /manifest is not valid JSON/);
    // unknown media type
    const odd = Buffer.from(
      JSON.stringify({ ...JSON.parse(await readFile(mpath, "utf8")), mediaType: "application/x-odd" }),
    );
    await writeFile(join(dir, blobPath(sha256(odd))), odd);
    index.manifests[0] = {
      ...index.manifests[0],
      digest: sha256(odd),
      size: odd.length,
      mediaType: "application/x-odd",
    };
    await writeFile(join(dir, "index.json"), JSON.stringify(index));
    await assert.rejects(openImage(`oci:${dir}`), /unsupported media type 'application\/x-odd'/);
    await writeFile(join(dir, "index.json"), "[]");
    await assert.rejects(openImage(`oci:${dir}`), /index.json is not valid JSON/);
  });

  it("refuses a directory that is not a layout, as source and as destination", async (t) => {
    const dir = await tempDir(t);
    await writeFile(join(dir, "something"), "x");
    await assert.rejects(openImage(`oci:${dir}`), /not an OCI image layout/);
    const img = await twoLayerImage();
    t.after(() => img.close());
    await assert.rejects(writeImage(img, `oci:${dir}`), /not an OCI layout/);
    assert.deepEqual(await readdir(dir), ["something"]);
  });
});

describe("oci-archive and docker-archive", () => {
  it("round-trips through oci-archive and docker-archive", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `oci-archive:${dir}/a.tar:v1`);
    const a = await openImage(`oci-archive:${dir}/a.tar:v1`);
    assert.deepEqual(await a.rawManifest(), await img.rawManifest());
    await writeImage(a, `docker-archive:${dir}/d.tar:example/os:1`);
    const d = await openImage(`docker-archive:${dir}/d.tar:example/os:1`);
    // docker-archive keeps the config and the layer content (stored uncompressed, digest = diff id)
    assert.deepEqual(await d.rawConfig(), await img.rawConfig());
    const layers = await d.layers();
    assert.deepEqual(
      layers.map((l) => l.digest),
      (await img.layers()).map((l) => l.diffId),
    );
    assert.deepEqual(await entriesOf(d, 1), ["etc", "etc/.wh.a", "etc/c"]);
    await assert.rejects(openImage(`docker-archive:${dir}/d.tar:other:1`), /no image named 'other:1'/);
    await writeImage(a, `docker-archive:${dir}/untagged.tar:example/os`);
    await openImage(`docker-archive:${dir}/untagged.tar:example/os:latest`);
    // docker-archive's gzip-compressed layers are read too (docker load accepts them)
    const gz = await collect((await (await img.layers())[0]!.compressed()).pipe(createGunzip()));
    assert.equal((await import("../../../src/oci/digest.js")).sha256(gz), layers[0]!.diffId);
  });

  it("selects an image of a multi-image docker-archive by name or @index, and lists names otherwise", async (t) => {
    const dir = await tempDir(t);
    const a = await twoLayerImage();
    t.after(() => a.close());
    const b = await editConfig(await twoLayerImage(), { labels: { which: "b" } });
    t.after(() => b.close());
    await writeImage(a, `docker-archive:${dir}/a.tar:x/a:1`);
    await writeImage(b, `docker-archive:${dir}/b.tar:x/b:1`);
    // Merge the two archives into one, as `docker save a b` would.
    const members = new Map<string, Buffer>();
    const manifests: unknown[] = [];
    for (const f of ["a.tar", "b.tar"]) {
      for await (const e of readTar(createReadStream(join(dir, f)))) {
        const body = await collect(e.body);
        if (e.path === "manifest.json") manifests.push(...JSON.parse(body.toString()));
        else members.set(e.path, body);
      }
    }
    members.set("manifest.json", Buffer.from(JSON.stringify(manifests)));
    const entries = [...members].map(([path, body]) => ({
      header: { path, type: "file" as const, mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0 },
      body,
    }));
    await writeFile(join(dir, "both.tar"), await collect(writeTar(entries)));
    await assert.rejects(openImage(`docker-archive:${dir}/both.tar`), (e: Error & { hint?: string }) => {
      return /holds 2 images; name one/.test(e.message) && /x\/a:1, x\/b:1/.test(e.hint ?? "");
    });
    const byName = await openImage(`docker-archive:${dir}/both.tar:x/b:1`);
    assert.equal((await byName.config()).config?.Labels?.which, "b");
    const byIndex = await openImage(`docker-archive:${dir}/both.tar:@0`);
    assert.deepEqual(await byIndex.rawConfig(), await a.rawConfig());
    await assert.rejects(
      openImage(`docker-archive:${dir}/both.tar:@5`),
      /no image @5 \(the archive holds 2\)/,
    );
  });

  it("never reads outside an archive or a layout (symlink members, ../ names, digests with paths)", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    const cfg = await img.rawConfig();
    const manifest = Buffer.from(
      JSON.stringify([{ Config: "c.json", RepoTags: ["x:1"], Layers: ["l1.tar", "l2.tar"] }]),
    );
    const file = (path: string, body: Buffer) => ({
      header: { path, type: "file" as const, mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0 },
      body,
    });
    const link = (path: string, linkname: string) => ({
      header: { path, type: "symlink" as const, mode: 0o777, uid: 0, gid: 0, size: 0, mtime: 0, linkname },
    });
    await writeFile(
      join(dir, "evil.tar"),
      await collect(
        writeTar([
          file("manifest.json", manifest),
          file("c.json", cfg),
          link("l1.tar", "../../../../../../etc/passwd"),
          link("l2.tar", "/etc/passwd"),
        ]),
      ),
    );
    await assert.rejects(
      openImage(`docker-archive:${dir}/evil.tar`),
      /layer l1.tar is missing from the archive/,
    );
    const m2 = Buffer.from(JSON.stringify([{ Config: "../c.json", RepoTags: [], Layers: [] }]));
    await writeFile(
      join(dir, "evil2.tar"),
      await collect(writeTar([file("manifest.json", m2), file("c.json", cfg)])),
    );
    await assert.rejects(openImage(`docker-archive:${dir}/evil2.tar`), /missing from the archive/);
    // an oci layout whose index points at a "digest" with a path in it
    await writeImage(img, `oci:${dir}/layout`);
    const index = JSON.parse(await readFile(join(dir, "layout/index.json"), "utf8"));
    index.manifests[0].digest = "sha256:../../../../etc/passwd";
    await writeFile(join(dir, "layout/index.json"), JSON.stringify(index));
    await assert.rejects(openImage(`oci:${dir}/layout`), /invalid descriptor/);
  });

  it("refuses an archive that ends early", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `oci-archive:${dir}/a.tar`);
    const { size } = await stat(`${dir}/a.tar`);
    await truncate(`${dir}/a.tar`, size - 2048);
    await assert.rejects(openImage(`oci-archive:${dir}/a.tar`), /ends early/);
    await truncate(`${dir}/a.tar`, 1000);
    await assert.rejects(openImage(`oci-archive:${dir}/a.tar`), /ends early/);
    await writeImage(img, `docker-archive:${dir}/d.tar`);
    await truncate(`${dir}/d.tar`, 3000);
    await assert.rejects(openImage(`docker-archive:${dir}/d.tar`), /ends early/);
    await assert.rejects(openImage(`oci-archive:${dir}/missing.tar`), /no such file/);
  });
});
