import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { test } from "node:test";
import { promisify } from "node:util";
import { YOUNG_GENERATION_CAP_BYTES } from "../../../src/agent/index.js";

const AGENT_INDEX = new URL("../../../src/agent/index.ts", import.meta.url).href;

/**
 * The largest new space seen in a fresh process that allocates short-lived objects (with a few
 * thousand survivors, which is what makes V8 grow the new space) in many small async steps, as
 * a stream does; capped or not. Its own process: the cap changes a process-wide V8 flag.
 */
async function maxYoungGeneration(cap: boolean): Promise<number> {
  const script = `
    import { capYoungGeneration, youngGenerationBytes } from ${JSON.stringify(AGENT_INDEX)};
    if (${cap}) capYoungGeneration();
    let keep = [];
    let max = 0;
    for (let round = 0; round < 1500; round++) {
      for (let i = 0; i < 5000; i++) {
        keep.push({ a: i, b: "x" + i });
        if (keep.length > 50000) keep = [];
      }
      await new Promise((r) => setImmediate(r));
      max = Math.max(max, youngGenerationBytes());
    }
    console.log(max);
  `;
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", script],
    { timeout: 60_000 },
  );
  return Number(stdout.trim());
}

test("capYoungGeneration keeps the new space at the cap where V8 would grow it to 32 MiB", async () => {
  const [free, capped] = await Promise.all([maxYoungGeneration(false), maxYoungGeneration(true)]);
  // Node 20's default: 16 MiB per semi-space. If this fails, the workload no longer makes V8
  // grow the new space and the second assertion proves nothing.
  assert.ok(free > 2 * YOUNG_GENERATION_CAP_BYTES, `uncapped new space ${free} bytes`);
  // One growth step may happen before the check after a collection runs.
  assert.ok(capped <= 2 * YOUNG_GENERATION_CAP_BYTES, `capped new space ${capped} bytes`);
  assert.ok(capped >= YOUNG_GENERATION_CAP_BYTES / 2, `capped new space ${capped} bytes`);
});
