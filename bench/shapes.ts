/**
 * The three image shapes of issue #13, built once and cached as oci layouts under
 * ~/.cache/kairos-ts/bench-readonce/<base key>/ (shared by bench/readonce.ts, bench/oci.ts and
 * bench/pull-throttled.ts, so every bench measures the same images):
 *
 *   base    the default base (oci layout, as `kairos base` leaves it)
 *   pax     the default base's rootfs re-layered by GNU tar: 3 gzip layers written by
 *           `tar --format=pax --xattrs` (usr / etc+var / the rest), as tar pipelines make them
 *   small   the default base plus one gzip layer of 100 000 files of 1-4 KiB (GNU tar)
 *
 * and each shape's Kairos form (`kairos init SHAPE`, cached beside it as SHAPE-kairos).
 */
import { createReadStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { DefaultBase } from "../src/base/index.js";
import { appendLayer, emptyImage, type Image, openImage, writeImage } from "../src/oci/index.js";
import { run } from "../src/sys/index.js";

const KAIROS = resolve(import.meta.dirname, "../bin/kairos");

/** Where the shapes of `base` are cached (keyed by the base's own cache key). */
export function shapesCache(base: DefaultBase): string {
  return join(process.env.HOME ?? tmpdir(), ".cache/kairos-ts/bench-readonce", base.key);
}

/** Write `image` to an oci layout under `cache`, once (published by rename). */
async function cachedLayout(
  cache: string,
  name: string,
  make: (tmp: string) => Promise<Image>,
): Promise<string> {
  const dir = join(cache, name);
  if (!existsSync(dir)) {
    const tmp = await mkdtemp(join(cache, `.${name}-`));
    const img = await make(tmp);
    await writeImage(img, `oci:${join(tmp, "layout")}:latest`);
    await img.close();
    await rename(join(tmp, "layout"), dir);
    await rm(tmp, { recursive: true, force: true });
  }
  return `oci:${dir}:latest`;
}

/** An image of GNU tar layers (files of tar bytes, compressed by appendLayer with gzip). */
async function imageOfTars(tars: string[], from: Image = emptyImage()): Promise<Image> {
  let img = from;
  for (const t of tars) img = await appendLayer(img, createReadStream(t, { highWaterMark: 1 << 20 }));
  return img;
}

/** The base's final rootfs as a directory (for re-layering by GNU tar). */
async function baseTree(base: DefaultBase, tmp: string): Promise<string> {
  const tree = join(tmp, "tree");
  await run(KAIROS, ["-q", "image", "unpack", base.ref, tree]);
  return tree;
}

/** The three shapes as `oci:` references, building the ones not cached yet. */
export async function makeShapes(base: DefaultBase): Promise<Record<string, string>> {
  const cache = shapesCache(base);
  await mkdir(cache, { recursive: true });
  const shapes: Record<string, string> = { base: base.ref };
  shapes.pax = await cachedLayout(cache, "pax", async (tmp) => {
    const tree = await baseTree(base, tmp);
    const top = (await readdir(tree)).filter((n) => !["usr", "etc", "var"].includes(n));
    const parts = [["usr"], ["etc", "var"], top];
    const tars: string[] = [];
    for (const [i, p] of parts.entries()) {
      const t = join(tmp, `layer${i}.tar`);
      await run("tar", ["--format=pax", "--xattrs", "--xattrs-include=*", "-C", tree, "-cf", t, ...p]);
      tars.push(t);
    }
    return imageOfTars(tars);
  });
  shapes.small = await cachedLayout(cache, "small", async (tmp) => {
    const files = join(tmp, "files");
    // 100 000 files of 1-4 KiB in 1 000 directories, text that gzip compresses like real files.
    for (let d = 0; d < 1000; d++) {
      const dir = join(files, "srv/small", String(d).padStart(4, "0"));
      await mkdir(dir, { recursive: true });
      for (let f = 0; f < 100; f++) {
        const n = d * 100 + f;
        const size = 1024 + ((n * 2654435761) % 3072);
        const line = `file ${n} of the many-small-files image, line padding to size\n`;
        await writeFile(join(dir, `f${f}.txt`), line.repeat(Math.ceil(size / line.length)).slice(0, size));
      }
    }
    const t = join(tmp, "small.tar");
    await run("tar", ["--format=pax", "-C", files, "-cf", t, "srv"]);
    return imageOfTars([t], await openImage(base.ref));
  });
  return shapes;
}

/** The Kairos form of shape `name` (`kairos init REF`, untimed, cached as NAME-kairos). */
export async function kairosOf(base: DefaultBase, name: string, ref: string): Promise<string> {
  const dir = join(shapesCache(base), `${name}-kairos`);
  if (!existsSync(dir)) {
    const tmp = join(shapesCache(base), `.${name}-kairos`);
    await rm(tmp, { recursive: true, force: true });
    await run(KAIROS, ["-q", "init", ref, "-o", `oci:${tmp}:latest`]);
    await rename(tmp, dir);
  }
  return `oci:${dir}:latest`;
}

/** Blob paths of an oci layout's layers, oldest first. */
export async function layerBlobs(ref: string): Promise<string[]> {
  const img = await openImage(ref);
  const dir = ref.slice("oci:".length).replace(/:latest$/, "");
  const m = await img.manifest();
  await img.close();
  return m.layers.map((l) => join(dir, "blobs", l.digest.replace(":", "/")));
}
