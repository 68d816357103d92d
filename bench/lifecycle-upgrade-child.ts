// One upgrade, as the node's agent runs it (its own process, so that its peak RSS is its own).
// It samples process.memoryUsage() every 100 ms and prints the peaks, what the figures were when
// RSS peaked, and the kernel's VmHWM as one `MEM {json}` line on stderr, so that the parent can
// tell where the peak comes from. KAIROS_BENCH_TRACE=1 adds a `TRACE` line every 500 ms (RSS
// split into anonymous and file pages); KAIROS_BENCH_BARE=1 starts and exits (the floor).
import { readFileSync } from "node:fs";
import { upgradeSystem } from "../src/agent/index.js";

const [cos, source] = process.argv.slice(2);
const MiB = 1024 * 1024;
const peak = { rss: 0, heapUsed: 0, heapTotal: 0, external: 0, arrayBuffers: 0 };
/** The sample where rss peaked: what the other figures were at that moment. */
let atRssPeak = { ...peak, t: 0 };
const t0 = Date.now();
let samples = 0;
function statusKiB(status: string, field: string): number {
  return Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
}
function sample(): void {
  const m = process.memoryUsage();
  for (const k of Object.keys(peak) as (keyof typeof peak)[]) peak[k] = Math.max(peak[k], m[k]);
  if (m.rss >= atRssPeak.rss) atRssPeak = { ...m, t: Date.now() - t0 };
  if (process.env.KAIROS_BENCH_TRACE === "1" && samples++ % 5 === 0) {
    const st = readFileSync("/proc/self/status", "utf8");
    const mib = (n: number) => Math.round(n / MiB);
    console.error(
      `TRACE t=${Date.now() - t0} rss=${mib(m.rss)} anon=${statusKiB(st, "RssAnon") >> 10} file=${statusKiB(st, "RssFile") >> 10} heapTotal=${mib(m.heapTotal)} heapUsed=${mib(m.heapUsed)} external=${mib(m.external)} arrayBuffers=${mib(m.arrayBuffers)}`,
    );
  }
}
const startRss = process.memoryUsage().rss / MiB;
const timer = setInterval(sample, 100);
timer.unref();
// A function, not top-level await: the bench bundles this as CommonJS, as the agent is.
async function main(): Promise<void> {
  if (process.env.KAIROS_BENCH_BARE !== "1") {
    await upgradeSystem({ cos: cos!, source: source!, target: "active", open: { insecure: true } });
  }
  sample();
  clearInterval(timer);
  const mib = (o: Record<string, number>) =>
    Object.fromEntries(Object.entries(o).map(([k, v]) => [k, k === "t" ? v : Math.round(v / MiB)]));
  const vmHWM = Math.round(statusKiB(readFileSync("/proc/self/status", "utf8"), "VmHWM") / 1024);
  console.error(
    `MEM ${JSON.stringify({ startRss: Math.round(startRss), vmHWM, peak: mib(peak), atRssPeak: mib(atRssPeak) })}`,
  );
}
void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
