import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { cp, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import type { TestContext } from "node:test";
import { gzipSync } from "node:zlib";
import { squashfsFromTar } from "../../../src/artifacts/squashfs.js";
import { flattenToDirectory, flattenToTar, unpackToDirectory } from "../../../src/oci/flatten.js";
import {
  appendLayer,
  blobPath,
  DigestMismatchError,
  emptyImage,
  type Image,
  type Manifest,
  openImage,
  sha256,
  writeImage,
} from "../../../src/oci/index.js";
import { writeTar } from "../../../src/tar/index.js";
import { layerTar } from "../../helpers/layers.js";
import { collect, tempDir } from "../../helpers/tmp.js";

/**
 * Blobs that do not match their descriptors, each in a way a consumer that stops reading early
 * would not notice:
 * - early-end: the declared size, other content: a tar with an injected file, its
 *   end-of-archive marker and zero padding, then other bytes, padded to the size;
 * - short: the blob without its last bytes (for a plain tar, part of the zero padding);
 * - long: the blob with bytes appended (zeros, which gunzip ignores after a member);
 * - compressed: the same tar, gzip bytes that differ (another header mtime), same size;
 * - diff-id: the blob is intact, the config's rootfs.diff_ids names other content.
 */
export const LIES = ["early-end", "short", "long", "compressed", "diff-id"] as const;
export type Lie = (typeof LIES)[number];

/** The file an early-end lie injects. */
export const INJECTED = "etc/injected";

/**
 * A good layer: a few files, the end-of-archive marker, then 12 MiB of random bytes that a
 * tar reader ignores (they are covered by the digests like any other byte). The tail is longer
 * than every read-ahead buffer between the blob and the tar reader together, so a reader that
 * stops at the marker provably never sees the blob's end.
 */
let goodTarBytes: Promise<Buffer> | undefined;
export function goodTar(): Promise<Buffer> {
  goodTarBytes ??= layerTar([{ path: "etc" }, { path: "etc/good", content: "good\n" }]).then((t) =>
    Buffer.concat([t, randomBytes(12 << 20)]),
  );
  return goodTarBytes;
}

/** A tar that ends early: an injected file, the end-of-archive marker and padding, then other bytes. */
export async function earlyEndTar(): Promise<Buffer> {
  const evil = await layerTar([{ path: "etc" }, { path: INJECTED, content: "injected\n" }]);
  return Buffer.concat([evil, Buffer.alloc(1024), Buffer.from("other bytes after the end of the archive\n")]);
}

async function* one(buf: Buffer): AsyncGenerator<Buffer> {
  yield buf;
}

let template: Promise<{ dir: string; manifest: Manifest }> | undefined;

/** The good image, built (and gzipped) once per test process. */
function goodTemplate(): Promise<{ dir: string; manifest: Manifest }> {
  template ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), "kairos-lies-"));
    process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
    const img = await appendLayer(
      emptyImage({ os: "linux", architecture: "amd64" }, "lies"),
      one(await goodTar()),
    );
    try {
      await writeImage(img, `oci:${dir}/layout:t`);
      return { dir: join(dir, "layout"), manifest: await img.manifest() };
    } finally {
      await img.close();
    }
  })();
  return template;
}

/** A one-layer image (gzip) as the layout `oci:DIR:t`; returns its manifest and the layer's blob file. */
export async function goodLayout(dir: string): Promise<{ blob: string; manifest: Manifest }> {
  const t = await goodTemplate();
  await cp(t.dir, dir, { recursive: true });
  return { blob: join(dir, blobPath(t.manifest.layers[0]!.digest)), manifest: t.manifest };
}

/** Replace an OCI layout's config (and with it the manifest and index.json entry) by `edit` of it. */
async function editLayoutConfig(dir: string, manifest: Manifest, edit: (c: Record<string, unknown>) => void) {
  const cfg = JSON.parse(await readFile(join(dir, blobPath(manifest.config.digest)), "utf8"));
  edit(cfg);
  const cfgBytes = Buffer.from(JSON.stringify(cfg));
  await writeFile(join(dir, blobPath(sha256(cfgBytes))), cfgBytes);
  const m: Manifest = {
    ...manifest,
    config: { ...manifest.config, digest: sha256(cfgBytes), size: cfgBytes.length },
  };
  const mBytes = Buffer.from(JSON.stringify(m));
  await writeFile(join(dir, blobPath(sha256(mBytes))), mBytes);
  const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8"));
  index.manifests[0].digest = sha256(mBytes);
  index.manifests[0].size = mBytes.length;
  await writeFile(join(dir, "index.json"), JSON.stringify(index));
}

/** A blob's bytes rewritten the way `lie` says (gzip blobs; `plain` for an uncompressed one). */
export async function lyingBytes(
  lie: Exclude<Lie, "diff-id">,
  good: Buffer,
  plain: boolean,
): Promise<Buffer> {
  switch (lie) {
    case "early-end": {
      const evil = plain ? await earlyEndTar() : gzipSync(await earlyEndTar());
      if (evil.length >= good.length) throw new Error("test setup: the early-end blob must be smaller");
      // Zeros after a gzip member are ignored by gunzip; in a plain tar they follow the marker.
      return Buffer.concat([evil, Buffer.alloc(good.length - evil.length, plain ? 0x58 : 0)]);
    }
    case "short":
      return good.subarray(0, good.length - (plain ? 512 : 4));
    case "long":
      return Buffer.concat([good, Buffer.alloc(1024)]);
    case "compressed": {
      if (plain) throw new Error("test setup: a plain tar has no compressed form to lie about");
      const b = Buffer.from(good);
      b.writeUInt32LE(b.readUInt32LE(4) + 1, 4); // gzip header MTIME: not covered by the gzip CRC
      return b;
    }
  }
}

/** Make the layout at `dir` (from goodLayout) lie. */
export async function makeLayoutLie(dir: string, lie: Lie, layout: { blob: string; manifest: Manifest }) {
  if (lie === "diff-id") {
    await editLayoutConfig(dir, layout.manifest, (c) => {
      (c.rootfs as { diff_ids: string[] }).diff_ids[0] = sha256("some other layer");
    });
    return;
  }
  await writeFile(layout.blob, await lyingBytes(lie, await readFile(layout.blob), false));
}

/**
 * A docker-archive (docker save format: uncompressed layer members; the digest a reader trusts
 * is the config's diff id). `compressed` has no meaning there: nothing states a compressed digest.
 */
export async function dockerArchiveLie(
  file: string,
  lie: Exclude<Lie, "compressed"> | "none",
): Promise<void> {
  const good = await goodTar();
  const diffId = lie === "diff-id" ? sha256("some other layer") : sha256(good);
  const layer = lie === "none" || lie === "diff-id" ? good : await lyingBytes(lie, good, true);
  const config = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [diffId] } }),
  );
  const manifest = Buffer.from(
    JSON.stringify([{ Config: "config.json", RepoTags: ["lies:t"], Layers: ["layer.tar"] }]),
  );
  const file_ = (path: string, body: Buffer) => ({
    header: { path, type: "file" as const, mode: 0o644, uid: 0, gid: 0, size: body.length, mtime: 0 },
    body,
  });
  const tar = await collect(
    writeTar([file_("manifest.json", manifest), file_("config.json", config), file_("layer.tar", layer)]),
  );
  await writeFile(file, tar);
}

/** An async iterable of one buffer (a tar to append). */
export function tarStream(buf: Buffer): Readable {
  return Readable.from([buf]);
}

/** What every failure must say: a DigestMismatchError naming the image, the layer blob and the expected digest. */
export function mismatch(image: string, blob: string): (e: unknown) => boolean {
  return (e) => {
    assert.ok(
      e instanceof DigestMismatchError,
      `expected a DigestMismatchError, got ${(e as Error)?.stack ?? e}`,
    );
    assert.ok(e.message.includes(image), `names the image ${image}: ${e.message}`);
    assert.ok(e.message.includes(`layer ${blob}`), `names the blob ${blob}: ${e.message}`);
    assert.match(e.message, /expected (digest )?sha256:[0-9a-f]{64}/);
    return true;
  };
}

const exists = (p: string) =>
  stat(p).then(
    () => true,
    () => false,
  );

/** Run `work`; if it fails, `check` that it left nothing behind, then pass the failure on. */
async function onFailure(work: () => Promise<unknown>, check: () => Promise<void>): Promise<void> {
  try {
    await work();
  } catch (e) {
    await check();
    throw e;
  }
}

/** The consumers of an image's blobs; each must fail and leave nothing that looks complete. */
export const SINKS: Record<string, (img: Image, out: string) => Promise<void>> = {
  "directory (flattenToDirectory)": async (img, out) => {
    await flattenToDirectory(img, join(out, "rootfs"));
  },
  "image unpack (unpackToDirectory)": (img, out) =>
    // Neither the target nor its staging sibling is left.
    onFailure(
      () => unpackToDirectory(img, join(out, "rootfs")),
      async () => assert.deepEqual(await readdir(out), []),
    ),
  "tar stream (flattenToTar: squashfs, ISO, init)": async (img) => {
    await collect(flattenToTar(img));
  },
  "squashfs (squashfsFromTar, as the ISO and netboot builds)": (img, out) =>
    onFailure(
      () => squashfsFromTar(flattenToTar(img), join(out, "rootfs.squashfs")),
      async () => assert.deepEqual(await readdir(out), []),
    ),
  "copy to oci:": (img, out) =>
    onFailure(
      () => writeImage(img, `oci:${out}/layout:t`),
      async () => assert.equal(await exists(join(out, "layout")), false),
    ),
  "copy to oci-archive:": (img, out) =>
    onFailure(
      () => writeImage(img, `oci-archive:${out}/a.tar:t`),
      async () => assert.deepEqual(await readdir(out), []),
    ),
  "copy to docker-archive:": (img, out) =>
    onFailure(
      () => writeImage(img, `docker-archive:${out}/d.tar:x:y`),
      async () => assert.deepEqual(await readdir(out), []),
    ),
  appendLayer: async (img, out) => {
    const derived = await appendLayer(img, tarStream(await layerTar([{ path: "new", content: "x" }])));
    try {
      await onFailure(
        () => writeImage(derived, `oci:${out}/layout:t`),
        async () => assert.equal(await exists(join(out, "layout")), false),
      );
    } finally {
      await derived.close();
    }
  },
};

export async function expectFailure(t: TestContext, ref: string, sink: string, blob: string) {
  const out = await tempDir(t);
  const img = await openImage(ref);
  try {
    await assert.rejects(SINKS[sink]!(img, out), mismatch(ref, blob));
  } finally {
    await img.close();
  }
}
