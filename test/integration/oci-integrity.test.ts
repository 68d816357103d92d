import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { type Image, openImage, parseDigest, writeImage } from "../../src/oci/index.js";
import { run } from "../../src/sys/index.js";
import { startRegistry, type TestRegistry } from "../helpers/registry.js";
import { tempDir } from "../helpers/tmp.js";
import { goodLayout, LIES, lyingBytes, makeLayoutLie, mismatch, SINKS } from "../unit/oci/lies.js";

const KAIROS = join(import.meta.dirname, "../../bin/kairos");

async function kairos(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(KAIROS, args, {
      env: { ...process.env, KAIROS_DEBUG: "" },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

async function manifestStatus(reg: TestRegistry, repo: string, tag: string): Promise<number> {
  const res = await fetch(`${reg.url}/v2/${repo}/manifests/${tag}`, {
    method: "HEAD",
    headers: { accept: "application/vnd.oci.image.manifest.v1+json" },
  });
  return res.status;
}

/**
 * The registry transport and the push sink, against the real Distribution registry. Blob lies
 * are made by rewriting the blob file in the registry's storage after an honest push (the
 * registry checks digests on upload, not when serving); the diff-id lie is uploaded by skopeo,
 * which copies an image whose config names other content without complaint.
 */
describe("registry: every blob verified to its last byte", () => {
  let reg: TestRegistry;
  let other: TestRegistry;
  before(async () => {
    [reg, other] = await Promise.all([startRegistry(), startRegistry()]);
  });
  after(async () => {
    await reg?.stop();
    await other?.stop();
  });

  const blobFile = (digest: string) => {
    const { hex } = parseDigest(digest);
    return join(reg.storage, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
  };

  for (const lie of LIES) {
    it(`${lie}: every sink refuses the docker:// image; image unpack exits 1 and leaves nothing`, async (t) => {
      const dir = join(await tempDir(t), "layout");
      const layout = await goodLayout(dir);
      const blob = layout.manifest.layers[0]!.digest;
      const ref = `docker://${reg.host}/lies/${lie}:t`;
      if (lie === "diff-id") {
        await makeLayoutLie(dir, lie, layout);
        await run("skopeo", ["copy", "-q", "--dest-tls-verify=false", `oci:${dir}:t`, ref]);
      } else {
        const good = await openImage(`oci:${dir}:t`);
        await writeImage(good, ref).finally(() => good.close());
        // Blobs are shared by every repository of the registry: put the good bytes back after.
        const file = blobFile(blob);
        const bytes = await readFile(file);
        t.after(() => writeFile(file, bytes));
        await writeFile(file, await lyingBytes(lie, bytes, false));
      }
      const sinks: Record<string, (img: Image, out: string) => Promise<void>> = {
        ...SINKS,
        // To another registry: no cross-repository mount can skip reading the blob.
        "push to another registry": async (img) => {
          try {
            await writeImage(img, `docker://${other.host}/copied/${lie}:t`);
          } finally {
            assert.equal(await manifestStatus(other, `copied/${lie}`, "t"), 404);
          }
        },
      };
      for (const [name, sink] of Object.entries(sinks)) {
        const out = await tempDir(t);
        const img = await openImage(ref);
        try {
          await assert.rejects(sink(img, out), mismatch(ref, blob), name);
        } finally {
          await img.close();
        }
      }
      const out = await tempDir(t);
      const r = await kairos(["image", "unpack", ref, join(out, "rootfs")]);
      assert.equal(r.code, 1, r.stdout + r.stderr);
      assert.ok(r.stderr.includes(blob), r.stderr);
      assert.deepEqual(await readdir(out), []);
    });
  }

  for (const lie of LIES) {
    it(`${lie}: push from an oci layout fails and the registry never gets the manifest`, async (t) => {
      const dir = join(await tempDir(t), "layout");
      const layout = await goodLayout(dir);
      await makeLayoutLie(dir, lie, layout);
      const img = await openImage(`oci:${dir}:t`);
      try {
        await assert.rejects(
          writeImage(img, `docker://${reg.host}/pushed/${lie}:t`),
          mismatch(`oci:${dir}:t`, layout.manifest.layers[0]!.digest),
        );
      } finally {
        await img.close();
      }
      assert.equal(await manifestStatus(reg, `pushed/${lie}`, "t"), 404);
    });
  }

  it("the issue's case: kairos image unpack oci:LAYOUT:TAG of a same-size lie exits 1, nothing unpacked", async (t) => {
    const tmp = await tempDir(t);
    const dir = join(tmp, "layout");
    const layout = await goodLayout(dir);
    await makeLayoutLie(dir, "early-end", layout);
    const r = await kairos(["image", "unpack", `oci:${dir}:t`, join(tmp, "rootfs")]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /digest is sha256:[0-9a-f]{64}, expected sha256:[0-9a-f]{64}/);
    assert.ok(r.stderr.includes(layout.manifest.layers[0]!.digest), r.stderr);
    assert.deepEqual((await readdir(tmp)).sort(), ["layout"]);
    // The same layout, honest, unpacks (and the staging sibling is gone).
    const good = join(tmp, "good");
    await goodLayout(good);
    const ok = await kairos(["image", "unpack", `oci:${good}:t`, join(tmp, "rootfs")]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(await readFile(join(tmp, "rootfs/etc/good"), "utf8"), "good\n");
    assert.deepEqual((await readdir(tmp)).sort(), ["good", "layout", "rootfs"]);
    // A non-empty target is refused before anything is read.
    const again = await kairos(["image", "unpack", `oci:${good}:t`, join(tmp, "rootfs")]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /exists and is not empty/);
  });
});
