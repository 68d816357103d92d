import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { unpackToDirectory } from "../../../src/oci/flatten.js";
import { DigestMismatchError, openImage, writeImage } from "../../../src/oci/index.js";
import { run } from "../../../src/sys/index.js";
import { collect, tempDir } from "../../helpers/tmp.js";
import { twoLayerImage } from "./fixtures.js";
import {
  dockerArchiveLie,
  expectFailure,
  goodLayout,
  LIES,
  type Lie,
  makeLayoutLie,
  mismatch,
  SINKS,
} from "./lies.js";

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

  it("a failed read does not vouch for a layer: a later copy of the same image still checks the diff id", async (t) => {
    const dir = join(await tempDir(t), "layout");
    const layout = await goodLayout(dir);
    await makeLayoutLie(dir, "diff-id", layout);
    const ref = `oci:${dir}:t`;
    const img = await openImage(ref);
    try {
      const blob = layout.manifest.layers[0]!.digest;
      await assert.rejects(
        SINKS["tar stream (flattenToTar: squashfs, ISO, init)"]!(img, ""),
        mismatch(ref, blob),
      );
      await assert.rejects(SINKS["copy to oci:"]!(img, await tempDir(t)), mismatch(ref, blob));
    } finally {
      await img.close();
    }
  });

  it("image unpack: an empty target is replaced, a non-empty one or a file is refused before reading", async (t) => {
    const tmp = await tempDir(t);
    const layout = join(tmp, "layout");
    await goodLayout(layout);
    const img = await openImage(`oci:${layout}:t`);
    t.after(() => img.close());
    await mkdir(join(tmp, "empty"));
    await unpackToDirectory(img, join(tmp, "empty"));
    assert.equal(await readFile(join(tmp, "empty/etc/good"), "utf8"), "good\n");
    await assert.rejects(unpackToDirectory(img, join(tmp, "empty")), /exists and is not empty/);
    await writeFile(join(tmp, "file"), "x");
    await assert.rejects(unpackToDirectory(img, join(tmp, "file")), /exists and is not a directory/);
    assert.deepEqual((await readdir(tmp)).sort(), ["empty", "file", "layout"]);
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

describe("a layer read a second time", () => {
  it("is not hashed as a tar again, but its blob still is: a blob changed between reads fails", async (t) => {
    const dir = await tempDir(t);
    const src = await twoLayerImage();
    await writeImage(src, `oci:${dir}:t`);
    const img = await openImage(`oci:${dir}:t`);
    const [layer] = await img.layers();
    const first = await collect(await layer!.uncompressed());
    assert.ok((await collect(await layer!.uncompressed())).equals(first));
    // Same length, one byte changed inside the gzip stream.
    const blob = join(dir, "blobs", layer!.digest.replace(":", "/"));
    const bytes = await readFile(blob);
    bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
    await writeFile(blob, bytes);
    await assert.rejects(collect(await layer!.uncompressed()), DigestMismatchError);
    await img.close();
  });
});
