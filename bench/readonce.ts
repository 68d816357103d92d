/**
 * The commands a user types, on the three image shapes of bench/shapes.ts (issue #13: the
 * default base, a 3-layer GNU tar pax image, the base plus 100 000 small files), all in one run.
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
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { ensureDefaultBase } from "../src/base/index.js";
import { run } from "../src/sys/index.js";
import { best, loadLine, report, type Timing, timed } from "./lib.js";
import { kairosOf, layerBlobs, makeShapes, shapesCache } from "./shapes.js";

const rounds = Number(process.argv[2] ?? 1);
const only = process.argv[3]?.split(",");
const KAIROS = resolve(import.meta.dirname, "../bin/kairos");
const base = await ensureDefaultBase();
const cache = shapesCache(base);
const work = await mkdtemp(join(tmpdir(), "kairos-bench-readonce-"));
const load = loadLine;
console.log(`default base: ${base.ref}\ncache: ${cache}\nwork: ${work}\nrounds: ${rounds}\nload: ${load()}`);

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
  const shapes = await makeShapes(base);
  for (const [name, ref] of Object.entries(shapes)) {
    if (only && !only.includes(name)) continue;
    const k = await kairosOf(base, name, ref);
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
