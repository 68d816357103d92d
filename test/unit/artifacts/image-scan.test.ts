/**
 * scanImage: what building media must know about an image, learnt from one read at most:
 * the config label, else the newest layers, else one full read that sets the modules aside.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import { KAIROS_FRAMEWORK_LABEL, scanImage } from "../../../src/artifacts/index.js";
import { appendLayer, editConfig, emptyImage, type Image, type Layer } from "../../../src/oci/index.js";
import { type E, layerTar } from "../../helpers/layers.js";
import { chunked } from "../../helpers/tmp.js";

const KVER = "6.1.0-28-amd64";
const BASE: E[] = [
  { path: "etc" },
  { path: "etc/os-release", type: "symlink", linkname: "../usr/lib/os-release" },
  { path: "usr/lib/os-release", content: "ID=debian\nNAME=Debian\n" },
  { path: `usr/lib/modules/${KVER}/modules.dep`, content: "kernel/fs/squashfs/squashfs.ko:\n" },
  { path: `usr/lib/modules/${KVER}/kernel/fs/squashfs/squashfs.ko`, content: "KO-BYTES" },
  {
    path: `usr/lib/modules/${KVER}/kernel/fs/squashfs/copy.ko`,
    type: "hardlink",
    linkname: `usr/lib/modules/${KVER}/kernel/fs/squashfs/squashfs.ko`,
  },
  { path: `boot/vmlinuz-${KVER}`, content: "kernel" },
];

async function imageOfLayers(...layers: E[][]): Promise<Image> {
  let img: Image = emptyImage({ os: "linux", architecture: "amd64" }, "scan-test");
  for (const l of layers) img = await appendLayer(img, chunked(await layerTar(l), 512));
  return img;
}

/** The same image, counting how often each layer (oldest first) is opened. */
async function counting(img: Image): Promise<{ image: Image; opened: number[] }> {
  const opened: number[] = (await img.layers()).map(() => 0);
  const image: Image = Object.create(img);
  image.layers = async () =>
    (await img.layers()).map((l, i) => {
      const c: Layer = Object.create(l);
      c.uncompressed = (cb) => {
        opened[i]!++;
        return l.uncompressed(cb);
      };
      return c;
    });
  return { image, opened };
}

describe("scanImage", () => {
  it("trusts the label kairos init writes: no layer is opened", async () => {
    const img = await editConfig(await imageOfLayers(BASE), {
      labels: { [KAIROS_FRAMEWORK_LABEL]: "kairos-ts 1" },
    });
    const { image, opened } = await counting(img);
    const scan = await scanImage(image);
    assert.equal(scan.kairos, true);
    assert.match(scan.kairos ? scan.evidence : "", /label io\.kairos\.framework/);
    assert.deepEqual(opened, [0]);
  });

  it("stops in the newest layers at /etc/kairos-release: the base layer is never opened", async () => {
    const top: E[] = [{ path: "etc" }, { path: "etc/kairos-release", content: "KAIROS_NAME=x\n" }];
    const { image, opened } = await counting(await imageOfLayers(BASE, top, [{ path: "srv" }]));
    const scan = await scanImage(image);
    assert.deepEqual(scan.kairos ? scan.evidence : "", "/etc/kairos-release");
    assert.deepEqual(opened, [0, 1, 1]);
  });

  it("takes KAIROS_NAME in the os-release /etc/os-release links to (the seed Dockerfile's way)", async () => {
    const top: E[] = [{ path: "usr/lib/os-release", content: "ID=debian\nKAIROS_NAME=seed\n" }];
    const { image, opened } = await counting(await imageOfLayers(BASE, top));
    const scan = await scanImage(image);
    assert.equal(scan.kairos, true);
    assert.match(scan.kairos ? scan.evidence : "", /KAIROS_NAME/);
    // The symlink is in the base layer: that one is read, and nothing twice.
    assert.deepEqual(opened, [1, 1]);
  });

  it("a whiteout of kairos-release in a newer layer makes it a base image", async () => {
    const kairos: E[] = [{ path: "etc" }, { path: "etc/kairos-release", content: "KAIROS_NAME=x\n" }];
    const gone: E[] = [{ path: "etc" }, { path: "etc/.wh.kairos-release", content: "" }];
    const scan = await scanImage(await imageOfLayers(BASE, kairos, gone));
    assert.equal(scan.kairos, false);
    if (!scan.kairos) await scan.modules.close();
  });

  it("reads a base image once: the view for the check, the modules set aside on disk", async () => {
    const { image, opened } = await counting(await imageOfLayers(BASE, [{ path: "srv" }]));
    const scan = await scanImage(image);
    assert.equal(scan.kairos, false);
    if (scan.kairos) return;
    assert.deepEqual(opened, [1, 1]);
    assert.equal((await scan.view.readFile("/etc/os-release"))?.toString(), "ID=debian\nNAME=Debian\n");
    assert.ok(await scan.view.readFile(`/usr/lib/modules/${KVER}/modules.dep`));
    const dir = `/usr/lib/modules/${KVER}/kernel/fs/squashfs`;
    assert.equal((await scan.modules.read(`${dir}/squashfs.ko`))?.toString(), "KO-BYTES");
    assert.equal((await scan.modules.read(`${dir}/copy.ko`))?.toString(), "KO-BYTES");
    assert.equal(await scan.modules.read(`/usr/lib/modules/${KVER}/modules.dep`), undefined);
    assert.equal(scan.modules.bytes, 8);
    const spill = (scan.modules as unknown as { dir: string }).dir;
    assert.ok(existsSync(spill));
    await scan.modules.close();
    assert.ok(!existsSync(spill));
  });
});

describe("scanImage, what the stream cannot decide on the fly", () => {
  it("a kairos-release behind a symlink is found in the complete view", async () => {
    const top: E[] = [
      { path: "etc" },
      { path: "etc/kairos-release", type: "symlink", linkname: "../usr/share/kairos/release" },
      { path: "usr/share/kairos/release", content: "KAIROS_NAME=x\n" },
    ];
    const scan = await scanImage(await imageOfLayers(BASE, top));
    assert.equal(scan.kairos ? scan.evidence : "", "/etc/kairos-release");
  });

  it("a dangling kairos-release symlink does not make a Kairos image", async () => {
    const top: E[] = [{ path: "etc" }, { path: "etc/kairos-release", type: "symlink", linkname: "nowhere" }];
    const scan = await scanImage(await imageOfLayers(BASE, top));
    assert.equal(scan.kairos, false);
    if (!scan.kairos) await scan.modules.close();
  });
});
