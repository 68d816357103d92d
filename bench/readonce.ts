/**
 * The commands a user types, on three image shapes (issue #13), all in one run:
 *
 *   base    the default base (oci layout, as `kairos base` leaves it)
 *   pax     the default base's rootfs re-layered by GNU tar: 3 gzip layers written by
 *           `tar --format=pax --xattrs` (usr / etc+var / the rest), as tar pipelines make them
 *   small   the default base plus one gzip layer of 100 000 files of 1-4 KiB (GNU tar)
 *
 * For each shape, with K = `kairos init SHAPE` (untimed, cached):
 *   build iso K --no-init           the one-pass reference
 *   build iso K                     the default path for a Kairos image (goal ≤ 1.05× of the above)
 *   auroraboot container_image=K    the seed's command (same goal)
 *   build iso SHAPE                 a base, kairos init on the fly (goal ≤ 1.3× of --no-init of K)
 *   image unpack SHAPE DIR          vs GNU `tar -xzf` of each layer in order (goal ≤ 1.0×), on a
 *                                   tmpfs target (/dev/shm) and on disk (`sync` before each run)
 *
 * Wall and CPU seconds (user+sys of the whole process tree, GNU time) and peak RSS; best of
 * `rounds` (default 1). The host is shared: print the load beside the figures.
 * Usage: node --import tsx bench/readonce.ts [rounds=1] [shape,…]
 */
import { createReadStream, existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ensureDefaultBase } from "../src/base/index.js";
import { appendLayer, emptyImage, type Image, openImage, writeImage } from "../src/oci/index.js";
import { run } from "../src/sys/index.js";
import { best, report, type Timing, timed } from "./lib.js";

const rounds = Number(process.argv[2] ?? 1);
const only = process.argv[3]?.split(",");
const KAIROS = resolve(import.meta.dirname, "../bin/kairos");
const base = await ensureDefaultBase();
const cache = join(process.env.HOME ?? tmpdir(), ".cache/kairos-ts/bench-readonce", base.key);
const work = await mkdtemp(join(tmpdir(), "kairos-bench-readonce-"));
const load = () =>
  loadavg()
    .map((x) => x.toFixed(1))
    .join(" ");
console.log(`default base: ${base.ref}\ncache: ${cache}\nwork: ${work}\nrounds: ${rounds}\nload: ${load()}`);

/** Write `image` to an oci layout under the cache, once (published by rename). */
async function cachedLayout(name: string, make: (tmp: string) => Promise<Image>): Promise<string> {
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
async function baseTree(tmp: string): Promise<string> {
  const tree = join(tmp, "tree");
  await run(KAIROS, ["-q", "image", "unpack", base.ref, tree]);
  return tree;
}

async function makeShapes(): Promise<Record<string, string>> {
  await mkdir(cache, { recursive: true });
  const shapes: Record<string, string> = { base: base.ref };
  shapes.pax = await cachedLayout("pax", async (tmp) => {
    const tree = await baseTree(tmp);
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
  shapes.small = await cachedLayout("small", async (tmp) => {
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

async function kairosOf(name: string, ref: string): Promise<string> {
  const dir = join(cache, `${name}-kairos`);
  if (!existsSync(dir)) {
    const tmp = join(cache, `.${name}-kairos`);
    await rm(tmp, { recursive: true, force: true });
    await run(KAIROS, ["-q", "init", ref, "-o", `oci:${tmp}:latest`]);
    await rename(tmp, dir);
  }
  return `oci:${dir}:latest`;
}

/** Best of `rounds` runs of a kairos command; `out` is removed after each run. */
async function ours(args: (out: string) => string[]): Promise<Timing> {
  const ts: Timing[] = [];
  for (let i = 0; i < rounds; i++) {
    const out = join(work, `out-${i}`);
    ts.push(await timed(KAIROS, ["-q", ...args(out)]));
    await rm(out, { recursive: true, force: true });
  }
  return best(ts);
}

/** Blob paths of an oci layout's layers, oldest first. */
async function layerBlobs(ref: string): Promise<string[]> {
  const img = await openImage(ref);
  const dir = ref.slice("oci:".length).replace(/:latest$/, "");
  const m = await img.manifest();
  await img.close();
  return m.layers.map((l) => join(dir, "blobs", l.digest.replace(":", "/")));
}

async function unpackPair(ref: string, parent: string): Promise<{ ours: Timing; tar: Timing }> {
  const blobs = await layerBlobs(ref);
  const o: Timing[] = [];
  const g: Timing[] = [];
  for (let i = 0; i < rounds; i++) {
    const dir = join(parent, `unpack-${i}`);
    await run("sync", []);
    o.push(await timed(KAIROS, ["-q", "image", "unpack", ref, dir]));
    await rm(dir, { recursive: true, force: true });
    await run("sync", []);
    // GNU tar, one process per layer in order (whiteouts are not applied: none in these shapes).
    await mkdir(dir);
    const script = blobs.map((b) => `tar --xattrs --xattrs-include='*' -xzf '${b}' -C '${dir}'`).join(" && ");
    g.push(await timed("sh", ["-c", script]));
    await rm(dir, { recursive: true, force: true });
  }
  return { ours: best(o), tar: best(g) };
}

const lines: string[] = [];
try {
  const shapes = await makeShapes();
  for (const [name, ref] of Object.entries(shapes)) {
    if (only && !only.includes(name)) continue;
    const k = await kairosOf(name, ref);
    console.log(`\n== ${name}: ${ref} (Kairos form ${k}); load ${load()}`);
    const noInit = await ours((o) => ["build", "iso", k, "--no-init", "--name", "b", "-o", o]);
    const kDefault = await ours((o) => ["build", "iso", k, "--name", "b", "-o", o]);
    const aurora = await ours((o) => [
      "auroraboot",
      "--set",
      `container_image=${k}`,
      "--set",
      `state_dir=${o}`,
      "--set",
      "disable_http_server=true",
      "--set",
      "disable_netboot=true",
    ]);
    const onTheFly = await ours((o) => ["build", "iso", ref, "--name", "b", "-o", o]);
    lines.push(report(`[${name}] build iso KAIROS (default path)`, kDefault, noInit, "--no-init", 1.05));
    lines.push(
      report(`[${name}] auroraboot container_image=KAIROS`, aurora, noInit, "build iso --no-init", 1.05),
    );
    lines.push(
      report(`[${name}] build iso BASE (init on the fly)`, onTheFly, noInit, "--no-init of KAIROS", 1.3),
    );
    const shm = await mkdtemp("/dev/shm/kairos-bench-");
    try {
      const t = await unpackPair(ref, shm);
      lines.push(report(`[${name}] image unpack → tmpfs`, t.ours, t.tar, "GNU tar -xzf per layer", 1.0));
    } finally {
      await rm(shm, { recursive: true, force: true });
    }
    const d = await unpackPair(ref, work);
    lines.push(report(`[${name}] image unpack → disk`, d.ours, d.tar, "GNU tar -xzf per layer", 1.0));
  }
  console.log(`\nsummary (load at end ${load()}):\n${lines.join("\n")}`);
} finally {
  await rm(work, { recursive: true, force: true });
}
