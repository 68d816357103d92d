import assert from "node:assert/strict";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { squashfsFromTar } from "../../../src/artifacts/squashfs.js";
import { flattenToDirectory, flattenToTar, unpackToDirectory } from "../../../src/oci/flatten.js";
import {
  appendLayer,
  DigestMismatchError,
  type Image,
  openImage,
  writeImage,
} from "../../../src/oci/index.js";
import { run } from "../../../src/sys/index.js";
import { layerTar } from "../../helpers/layers.js";
import { collect, tempDir } from "../../helpers/tmp.js";
import { dockerArchiveLie, goodLayout, LIES, type Lie, makeLayoutLie, tarStream } from "./lies.js";

/** What every failure must say: a DigestMismatchError naming the image, the layer blob and the expected digest. */
function mismatch(image: string, blob: string): (e: unknown) => boolean {
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
const SINKS: Record<string, (img: Image, out: string) => Promise<void>> = {
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

async function expectFailure(t: TestContext, ref: string, sink: string, blob: string) {
  const out = await tempDir(t);
  const img = await openImage(ref);
  try {
    await assert.rejects(SINKS[sink]!(img, out), mismatch(ref, blob));
  } finally {
    await img.close();
  }
}

describe("every blob is verified to its last byte, whatever the consumer reads", () => {
  it("the good images these lies start from are accepted by every sink", async (t) => {
    const dir = await tempDir(t);
    await goodLayout(join(dir, "layout"));
    await run("tar", [
      "-C",
      join(dir, "layout"),
      "-cf",
      join(dir, "a.tar"),
      "oci-layout",
      "index.json",
      "blobs",
    ]);
    await dockerArchiveLie(join(dir, "d.tar"), "none");
    for (const ref of [`oci:${dir}/layout:t`, `oci-archive:${dir}/a.tar:t`, `docker-archive:${dir}/d.tar`]) {
      for (const [name, sink] of Object.entries(SINKS)) {
        const out = await tempDir(t);
        const img = await openImage(ref);
        try {
          await sink(img, out);
        } catch (e) {
          assert.fail(`${ref} into ${name}: ${(e as Error).message}`);
        } finally {
          await img.close();
        }
      }
    }
  });

  it("a corrupt gzip stream is reported as the digest mismatch it is, not as a zlib error", async (t) => {
    const dir = join(await tempDir(t), "layout");
    const layout = await goodLayout(dir);
    const bytes = await readFile(layout.blob);
    bytes[bytes.length >> 1]! ^= 0xff;
    await writeFile(layout.blob, bytes);
    for (const sink of ["directory (flattenToDirectory)", "copy to oci:", "copy to docker-archive:"]) {
      await expectFailure(t, `oci:${dir}:t`, sink, layout.manifest.layers[0]!.digest);
    }
  });

  for (const lie of LIES) {
    describe(`lie: ${lie}`, () => {
      for (const sink of Object.keys(SINKS)) {
        it(`oci layout, ${sink}`, async (t) => {
          const dir = join(await tempDir(t), "layout");
          const layout = await goodLayout(dir);
          await makeLayoutLie(dir, lie, layout);
          await expectFailure(t, `oci:${dir}:t`, sink, layout.manifest.layers[0]!.digest);
        });
        it(`oci-archive, ${sink}`, async (t) => {
          const tmp = await tempDir(t);
          const dir = join(tmp, "layout");
          const layout = await goodLayout(dir);
          await makeLayoutLie(dir, lie, layout);
          const file = join(tmp, "a.tar");
          await run("tar", ["-C", dir, "-cf", file, "oci-layout", "index.json", "blobs"]);
          await expectFailure(t, `oci-archive:${file}:t`, sink, layout.manifest.layers[0]!.digest);
        });
        if (lie !== "compressed") {
          // docker save stores plain tars and no compressed digest: there is nothing to lie about.
          it(`docker-archive, ${sink}`, async (t) => {
            const file = join(await tempDir(t), "d.tar");
            await dockerArchiveLie(file, lie as Exclude<Lie, "compressed">);
            const img = await openImage(`docker-archive:${file}`);
            const blob = (await img.layers())[0]!.digest;
            await img.close();
            await expectFailure(t, `docker-archive:${file}`, sink, blob);
          });
        }
      }
    });
  }
});
