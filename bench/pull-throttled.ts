/**
 * `kairos build iso docker://…` with the registry behind a throttled link (issue #13: ≤ 1.1× of
 * `skopeo copy` of the same image alone, i.e. all our work hides behind the download).
 *
 * The link: a network namespace of our own (nothing else runs in it) whose loopback carries a
 * token bucket, `tc qdisc add dev lo root tbf rate RATE`; the registry (test/helpers/registry.ts,
 * on the namespace's 127.0.0.1) and both clients run inside it, so every byte between them goes
 * through the bucket, and nothing outside the namespace is slowed. The images are pushed before
 * the throttle goes on; a timed fetch of one blob with curl shows the rate the link really gives.
 *
 * Images: the Kairos form of the default base (bench/shapes.ts, `base-kairos`) and, for init on
 * the fly, the default base itself. Per round, in turn:
 *   skopeo copy docker://… oci:L:latest          (the download alone)
 *   kairos -q build iso docker://… -o DIR        (the command a user types)
 * Root is needed (ip netns, tc). Run: node --import tsx bench/pull-throttled.ts [rounds=2] [rate=100mbit]
 */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDefaultBase } from "../src/base/index.js";
import { openImage } from "../src/oci/index.js";
import { run } from "../src/sys/index.js";
import { startRegistry } from "../test/helpers/registry.js";
import { best, loadLine, report, type Timing, timed } from "./lib.js";
import { kairosOf, makeShapes } from "./shapes.js";

const rounds = Number(process.argv[2] ?? 2);
const rate = process.argv[3] ?? "100mbit";
const INSIDE = "KAIROS_BENCH_THROTTLED_NS";

/** Outside: make the namespace, run this script again inside it, delete the namespace. */
function outside(): number {
  const ns = `kairos-pullbench-${process.pid}`;
  const ip = (...args: string[]) => {
    const r = spawnSync("ip", args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
  };
  ip("netns", "add", ns);
  try {
    ip("-n", ns, "link", "set", "lo", "up");
    const r = spawnSync(
      "ip",
      [
        "netns",
        "exec",
        ns,
        process.execPath,
        ...process.execArgv,
        import.meta.filename,
        ...process.argv.slice(2),
      ],
      { stdio: "inherit", env: { ...process.env, [INSIDE]: ns } },
    );
    return r.status ?? 1;
  } finally {
    const pids = spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" })
      .stdout.split(/\s+/)
      .filter(Boolean);
    for (const p of pids) spawnSync("kill", ["-9", p]);
    spawnSync("ip", ["netns", "del", ns]);
  }
}

/** Megabytes per second of a curl download of `url` (to /dev/null), checked against `size`. */
async function linkRate(url: string, size: number): Promise<number> {
  const { stdout } = await run("curl", [
    "-sS",
    "-o",
    "/dev/null",
    "-w",
    "%{size_download} %{time_total}",
    url,
  ]);
  const [bytes, secs] = stdout.trim().split(" ").map(Number);
  if (bytes !== size) throw new Error(`curl fetched ${bytes} bytes of ${url}, expected ${size}`);
  return bytes! / secs! / 1e6;
}

async function inside(): Promise<void> {
  const KAIROS = join(import.meta.dirname, "..", "bin", "kairos");
  const base = await ensureDefaultBase();
  const shapes = await makeShapes(base);
  const images: [string, string][] = [
    ["kairos", await kairosOf(base, "base", shapes.base!)],
    ["base", shapes.base!],
  ];
  const registry = await startRegistry();
  const work = await mkdtemp(join(tmpdir(), "kairos-bench-throttled-"));
  const lines: string[] = [];
  try {
    for (const [name, layout] of images) {
      await run("skopeo", [
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        layout,
        `docker://${registry.host}/bench/${name}:latest`,
      ]);
    }
    await run("tc", [
      "qdisc",
      "add",
      "dev",
      "lo",
      "root",
      "tbf",
      "rate",
      rate,
      "burst",
      "256kb",
      "latency",
      "100ms",
    ]);
    // The biggest layer of the first image, fetched once through the throttle.
    const img = await openImage(images[0]![1]);
    const layer = (await img.manifest()).layers.reduce((a, b) => (b.size > a.size ? b : a));
    await img.close();
    const mbps = await linkRate(`${registry.url}/v2/bench/kairos/blobs/${layer.digest}`, layer.size);
    console.log(
      `${new Date().toISOString()} namespace ${process.env[INSIDE]}, lo: tbf rate ${rate}; ` +
        `curl of a ${(layer.size / 1e6).toFixed(0)} MB blob: ${mbps.toFixed(1)} MB/s (${((mbps * 8) / 1000).toFixed(3)} Gbit/s); load ${loadLine()}`,
    );
    for (const [name, layout] of images) {
      const ref = `docker://${registry.host}/bench/${name}:latest`;
      const m = await openImage(layout);
      const bytes = (await m.manifest()).layers.reduce((a, l) => a + l.size, 0);
      await m.close();
      console.log(`\n== ${name}: ${layout} → ${ref} (${(bytes / 1e6).toFixed(0)} MB of layers)`);
      const copies: Timing[] = [];
      const isos: Timing[] = [];
      for (let i = 0; i < rounds; i++) {
        const oci = join(work, "copy");
        copies.push(
          await timed("skopeo", ["copy", "--quiet", "--src-tls-verify=false", ref, `oci:${oci}:latest`]),
        );
        await rm(oci, { recursive: true, force: true });
        const out = join(work, "iso");
        isos.push(await timed(KAIROS, ["-q", "build", "iso", ref, "--name", "b", "-o", out]));
        await rm(out, { recursive: true, force: true });
        const [c, s] = [copies.at(-1)!, isos.at(-1)!];
        console.log(
          `  round ${i + 1}: skopeo copy ${c.seconds.toFixed(1)} s, build iso ${s.seconds.toFixed(1)} s; load ${loadLine()}`,
        );
      }
      lines.push(
        report(
          `[${name}] build iso docker:// over ${rate}`,
          best(isos),
          best(copies),
          "skopeo copy alone",
          1.1,
        ),
      );
    }
    console.log(
      `\nsummary (${new Date().toISOString()}, load at end ${loadLine()}, best of ${rounds}):\n${lines.join("\n")}`,
    );
  } finally {
    await registry.stop();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.env[INSIDE]) await inside();
else process.exitCode = outside();
