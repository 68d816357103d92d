import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { forEachLimit, uniqueByDigest } from "../../../src/oci/util.js";

describe("forEachLimit", () => {
  it("never runs more than the limit at once and visits every item", async () => {
    let running = 0;
    let peak = 0;
    const seen: number[] = [];
    await forEachLimit([1, 2, 3, 4, 5, 6, 7], 3, async (n) => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 5 + (n % 3) * 5));
      seen.push(n);
      running--;
    });
    assert.equal(peak, 3);
    assert.deepEqual(seen.sort(), [1, 2, 3, 4, 5, 6, 7]);
  });
  it("starts nothing new after a failure and throws the first error", async () => {
    const started: number[] = [];
    await assert.rejects(
      forEachLimit([1, 2, 3, 4, 5], 2, async (n) => {
        started.push(n);
        await new Promise((r) => setTimeout(r, 5));
        if (n === 1) throw new Error("first");
        if (n === 2) throw new Error("second");
      }),
      /first/,
    );
    assert.deepEqual(started, [1, 2]);
  });
  it("dedupes by digest keeping order", () => {
    assert.deepEqual(
      uniqueByDigest([{ digest: "a" }, { digest: "b" }, { digest: "a" }]).map((x) => x.digest),
      ["a", "b"],
    );
  });
});
