/**
 * Upgrade wall time vs `mksquashfs` of the same tree on the same disk (issue #10 performance):
 * a Kairos image (the default base + `kairos init`) in a real local registry; (a) upgradeSystem
 * pulls it into a new slot on a loop-mounted ext4 (pull + flatten + tar2sqfs + boot files +
 * fsync + rotation), (b) the same image unpacked on that filesystem and packed with
 * `mksquashfs DIR -comp zstd -Xcompression-level 3 -b 1M` (the unpack is not counted). Runs
 * alternate (a, b, a, b, …); the ratio of the best of each is printed. Also the agent's peak
 * RSS for (a), measured in a child process: its own VmHWM (tar2sqfs, its child, is reported
 * apart), its memoryUsage() peaks (heap, external, array buffers), its CPU time, and the RSS of
 * a bare start of the same bundle (the floor). KAIROS_BENCH_TRACE=1 prints the child's samples.
 *
 *   node --import tsx bench/lifecycle-upgrade.ts [--runs N]
 */
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { ensureDefaultBase } from "../src/base/index.js";
import { kairosInit } from "../src/factory/init.js";
import { flattenToDirectory } from "../src/oci/flatten.js";
import { openImage, writeImage } from "../src/oci/index.js";
import { run } from "../src/sys/index.js";
import { startRegistry } from "../test/helpers/registry.js";

const runs = Number(process.argv[process.argv.indexOf("--runs") + 1] || 2) || 2;
const REPO = new URL("..", import.meta.url).pathname;

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "kairos-bench-upgrade-"));
  const reg = await startRegistry();
  let device = "";
  const mnt = join(work, "mnt");
  try {
    const base = await ensureDefaultBase({});
    const layout = join(work, "layout");
    await kairosInit(base.ref, `oci:${layout}:v2`, { osVersion: "v2.0.0-bench" });
    const image = await openImage(`oci:${layout}:v2`);
    await writeImage(image, `docker://${reg.host}/kairos-bench:v2`, { insecure: true });
    await image.close();

    const fsImg = join(work, "fs.img");
    await writeFile(fsImg, "");
    await truncate(fsImg, 6 * 1024 ** 3);
    await run("mkfs.ext4", ["-q", "-F", "-m", "0", "-L", "KTS_BENCH", fsImg]);
    device = (await run("losetup", ["-f", "--show", fsImg])).stdout.trim();
    await mkdir(mnt);
    await run("mount", [device, mnt]);
    // The unpacked tree for mksquashfs, on the same filesystem.
    const tree = join(mnt, "tree");
    const img2 = await openImage(`oci:${layout}:v2`);
    await flattenToDirectory(img2, tree);
    await img2.close();

    // The child is bundled as the agent is (esbuild, CommonJS), so that its RSS is not tsx's.
    const child = join(work, "upgrade-child.cjs");
    await build({
      entryPoints: [join(REPO, "bench/lifecycle-upgrade-child.ts")],
      bundle: true,
      platform: "node",
      target: "node20",
      format: "cjs",
      outfile: child,
      logLevel: "silent",
    });
    const ours: number[] = [];
    const theirs: number[] = [];
    let rssKiB = 0;
    let withChildrenKiB = 0;
    // The bundle's own start, without an upgrade: the floor under the peak.
    const bare = await timedChild([child, "", ""], { KAIROS_BENCH_BARE: "1" });
    console.log(`bare start: max RSS ${(bare.maxRssKiB / 1024).toFixed(0)} MiB ${bare.mem}`);
    for (let i = 0; i < runs; i++) {
      const cos = join(mnt, "cOS");
      await run("sync", []);
      const t0 = Date.now();
      const r = await timedChild([child, cos, `oci:${reg.host}/kairos-bench:v2`]);
      ours.push((Date.now() - t0) / 1000);
      rssKiB = Math.max(rssKiB, r.nodeHwmKiB || r.maxRssKiB);
      withChildrenKiB = Math.max(withChildrenKiB, r.maxRssKiB);
      console.log(
        `  memory: node ${r.mem}; max RSS of node and its children (time -f %M) ${(r.maxRssKiB / 1024).toFixed(0)} MiB; children ${JSON.stringify(r.childrenHwmMiB)}; cpu user ${r.userS} s sys ${r.sysS} s`,
      );
      const out = join(mnt, "mksquashfs.img");
      await run("sync", []);
      const t1 = Date.now();
      await run("mksquashfs", [
        tree,
        out,
        "-comp",
        "zstd",
        "-Xcompression-level",
        "3",
        "-b",
        "1M",
        "-noappend",
        "-quiet",
      ]);
      await run("sync", []);
      theirs.push((Date.now() - t1) / 1000);
      await rm(out, { force: true });
      console.log(
        `run ${i + 1}: upgrade ${ours.at(-1)!.toFixed(1)} s, mksquashfs ${theirs.at(-1)!.toFixed(1)} s`,
      );
    }
    const a = Math.min(...ours);
    const b = Math.min(...theirs);
    console.log(
      `upgrade (registry -> ready slot) best ${a.toFixed(1)} s vs mksquashfs best ${b.toFixed(1)} s: ${(a / b).toFixed(2)}x (goal <= 1.2x); agent peak RSS ${(rssKiB / 1024).toFixed(0)} MiB (goal <= 120; the largest of it and its children: ${(withChildrenKiB / 1024).toFixed(0)} MiB)`,
    );
  } finally {
    await run("umount", [mnt]).catch(() => {});
    if (device) await run("losetup", ["-d", device]).catch(() => {});
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

interface ChildFigures {
  /** ru_maxrss from wait4: the largest of node and every descendant it waited for (tar2sqfs). */
  maxRssKiB: number;
  /** The node process's own VmHWM, from its MEM line. */
  nodeHwmKiB: number;
  /** The child's MEM line (its memoryUsage() peaks). */
  mem: string;
  /** VmHWM of the node process's children (perl → tar2sqfs, rdsquashfs, …) by command name, MiB. */
  childrenHwmMiB: Record<string, number>;
  userS: number;
  sysS: number;
}

/**
 * Run node with args under /usr/bin/time (peak RSS as wait4 reports it, CPU times), polling
 * /proc every 100 ms for the VmHWM of node's children, so that node's own peak is told apart
 * from tar2sqfs' (wait4's figure is the larger of the two).
 */
function timedChild(args: string[], env: Record<string, string> = {}): Promise<ChildFigures> {
  return new Promise((resolve, reject) => {
    const c = spawn("/usr/bin/time", ["-f", "MAXRSS %M USER %U SYS %S", process.execPath, ...args], {
      stdio: ["ignore", "inherit", "pipe"],
      env: { ...process.env, ...env },
    });
    const childrenHwmMiB: Record<string, number> = {};
    const poll = setInterval(() => {
      void descendantsHwm(c.pid!, childrenHwmMiB);
    }, 100);
    let err = "";
    c.stderr.on("data", (d) => {
      err += d;
    });
    c.on("close", (code) => {
      clearInterval(poll);
      if (code !== 0) return reject(new Error(`upgrade child failed (${code}): ${err.slice(-2000)}`));
      const mem = /MEM (\{.*\})/.exec(err)?.[1] ?? "{}";
      resolve({
        maxRssKiB: Number(/MAXRSS (\d+)/.exec(err)?.[1] ?? 0),
        nodeHwmKiB: Number((JSON.parse(mem) as { vmHWM?: number }).vmHWM ?? 0) * 1024,
        mem,
        childrenHwmMiB,
        userS: Number(/USER ([\d.]+)/.exec(err)?.[1] ?? 0),
        sysS: Number(/SYS ([\d.]+)/.exec(err)?.[1] ?? 0),
      });
    });
  });
}

/** Record the VmHWM (MiB) of the grandchildren of `timePid` (node's children) by name. */
async function descendantsHwm(timePid: number, into: Record<string, number>): Promise<void> {
  const procs: { pid: number; ppid: number; comm: string }[] = [];
  for (const name of await readdir("/proc").catch(() => [] as string[])) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, "utf8").catch(() => "");
    const m = /^\d+ \((.*)\) \S (\d+)/.exec(stat);
    if (m) procs.push({ pid: Number(name), ppid: Number(m[2]), comm: m[1]! });
  }
  const node = procs.find((p) => p.ppid === timePid);
  if (!node) return;
  for (const p of procs.filter((q) => q.ppid === node.pid)) {
    const status = await readFile(`/proc/${p.pid}/status`, "utf8").catch(() => "");
    const hwm = Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024;
    if (hwm) into[p.comm] = Math.max(into[p.comm] ?? 0, Math.round(hwm));
  }
}

await main();
