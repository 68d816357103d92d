import { PerformanceObserver } from "node:perf_hooks";
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";

/**
 * V8's young generation (new space: two semi-spaces) may reach 32 MiB in Node 20 (16 MiB per
 * semi-space), and an upgrade, which allocates many short-lived stream objects, grows it there:
 * 43 MiB of heap with 10-20 MiB in use, about a quarter of the agent's peak RSS. Node takes
 * `--max-semi-space-size` only at start, and the agent is a single executable that carries no
 * node flags. `--semi-space-growth-factor` is read each time the new space grows, so setting it
 * to 1 once the new space reached the cap stops the growth there. Measured on the upgrade bench
 * (docs/benchmarks.md): 8 MiB gave the same peak as `--max-semi-space-size=4` at start, and the
 * same CPU time as no cap.
 */
export const YOUNG_GENERATION_CAP_BYTES = 8 << 20;

/** The new space's current size (both semi-spaces), in bytes. */
export function youngGenerationBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;
}

let capped = false;

/**
 * Stop the young generation from growing past `capBytes` (for the rest of the process: the
 * setting is process-wide and is not undone). Checked after each garbage collection, the only
 * time V8 grows the new space; it can overshoot by the one growth step that happens before the
 * check runs.
 */
export function capYoungGeneration(capBytes = YOUNG_GENERATION_CAP_BYTES): void {
  if (capped) return;
  capped = true;
  const stop = () => setFlagsFromString("--semi-space-growth-factor=1");
  if (youngGenerationBytes() >= capBytes) {
    stop();
    return;
  }
  const obs = new PerformanceObserver(() => {
    if (youngGenerationBytes() < capBytes) return;
    stop();
    obs.disconnect();
  });
  obs.observe({ entryTypes: ["gc"] });
}
