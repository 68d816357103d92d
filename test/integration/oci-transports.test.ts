import assert from "node:assert/strict";
import { link, mkdir, readFile, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { flattenToDirectory } from "../../src/oci/flatten.js";
import { MediaType, openImage, writeImage } from "../../src/oci/index.js";
import { run } from "../../src/sys/index.js";
import { tempDir } from "../helpers/tmp.js";
import { twoLayerImage } from "../unit/oci/fixtures.js";

async function skopeoDigest(ref: string): Promise<string> {
  const { stdout } = await run("skopeo", ["inspect", ref]);
  return (JSON.parse(stdout) as { Digest: string }).Digest;
}

describe("archives and layouts, cross-checked with skopeo and umoci", () => {
  it("skopeo reads our oci-archive and docker-archive; umoci unpacks what skopeo copied out of them", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `oci-archive:${dir}/a.tar:v1`);
    assert.equal(await skopeoDigest(`oci-archive:${dir}/a.tar:v1`), await img.digest());
    // skopeo copies our layout into its own dir: format with every blob verified
    await writeImage(img, `oci:${dir}/layout:v1`);
    await run("skopeo", ["copy", "-q", `oci:${dir}/layout:v1`, `dir:${dir}/skopeo-dir`]);
    assert.deepEqual(await readFile(`${dir}/skopeo-dir/manifest.json`), await img.rawManifest());
    await writeImage(img, `docker-archive:${dir}/d.tar:example/two:1`);
    await run("skopeo", ["copy", "-q", `docker-archive:${dir}/d.tar`, `oci:${dir}/from-docker:t`]);
    await run("umoci", ["unpack", "--rootless", "--image", `${dir}/from-docker:t`, `${dir}/b`]);
    assert.equal(await readFile(`${dir}/b/rootfs/etc/c`, "utf8"), "charlie\n");
    await assert.rejects(stat(`${dir}/b/rootfs/etc/a`), /ENOENT/);
  });

  it("reads skopeo's docker-archive, oci-archive and zstd-compressed layers", async (t) => {
    const dir = await tempDir(t);
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, `oci:${dir}/src:t`);
    const diffIds = (await img.layers()).map((l) => l.diffId);
    await run("skopeo", ["copy", "-q", `oci:${dir}/src:t`, `docker-archive:${dir}/sk-d.tar:sk/img:1`]);
    const d = await openImage(`docker-archive:${dir}/sk-d.tar:sk/img:1`);
    assert.deepEqual(
      (await d.layers()).map((l) => l.diffId),
      diffIds,
    );
    await run("skopeo", ["copy", "-q", `oci:${dir}/src:t`, `oci-archive:${dir}/sk-o.tar:t`]);
    const o = await openImage(`oci-archive:${dir}/sk-o.tar:t`);
    assert.equal(await o.digest(), await img.digest());
    await run("skopeo", [
      "copy",
      "-q",
      "--dest-compress-format",
      "zstd",
      "--dest-compress",
      `oci:${dir}/src:t`,
      `oci:${dir}/zstd:t`,
    ]);
    const z = await openImage(`oci:${dir}/zstd:t`);
    const zl = await z.layers();
    assert.ok(
      zl.every((l) => l.mediaType === MediaType.OCI_LAYER_ZSTD),
      zl.map((l) => l.mediaType).join(),
    );
    await flattenToDirectory(z, `${dir}/unz`);
    assert.equal(await readFile(`${dir}/unz/etc/b`, "utf8"), "bravo\n");
    await assert.rejects(stat(`${dir}/unz/etc/a`), /ENOENT/);
  });

  it("dir: packs a rootfs (modes, symlinks, hardlinks, xattrs) that umoci unpacks identically", async (t) => {
    const dir = await tempDir(t);
    const root = join(dir, "rootfs");
    await mkdir(join(root, "usr/bin"), { recursive: true });
    await writeFile(join(root, "usr/bin/tool"), "#!/bin/sh\necho hi\n", { mode: 0o4755 });
    await link(join(root, "usr/bin/tool"), join(root, "usr/bin/tool2"));
    await symlink("usr/bin", join(root, "bin"));
    await writeFile(join(root, "cap"), "x");
    await run("setfattr", [
      "-n",
      "security.capability",
      "-v",
      "0x0100000200100000000000000000000000000000",
      join(root, "cap"),
    ]);
    const img = await openImage(`dir:${root}`);
    t.after(() => img.close());
    await writeImage(img, `oci:${dir}/layout:t`);
    await run("umoci", ["unpack", "--image", `${dir}/layout:t`, `${dir}/b`]);
    const r = `${dir}/b/rootfs`;
    assert.equal((await stat(`${r}/usr/bin/tool`)).mode & 0o7777, 0o4755);
    assert.equal((await stat(`${r}/usr/bin/tool`)).ino, (await stat(`${r}/usr/bin/tool2`)).ino);
    const { stdout } = await run("getfattr", ["-n", "security.capability", "-e", "hex", `${r}/cap`]);
    assert.match(stdout, /security.capability=0x0100000200100000000000000000000000000000/);
    const { stdout: l } = await run("readlink", [`${r}/bin`]);
    assert.equal(l.trim(), "usr/bin");
  });
});
