import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { bodyChunkSize } from "../../../src/netboot/index.js";

describe("HTTP body piece size", () => {
  it("is just under 4 MiB for a few transfers and shrinks as more run, down to 256 KiB", () => {
    // 4 MiB less 256 KiB: under bin/kairos's 4 MiB mmap threshold.
    assert.equal(bodyChunkSize(0), (4 << 20) - (256 << 10));
    assert.equal(bodyChunkSize(1), (4 << 20) - (256 << 10));
    assert.equal(bodyChunkSize(8), (4 << 20) - (256 << 10));
    assert.equal(bodyChunkSize(9), (3 << 20) + (512 << 10)); // 32 MiB / 9, in 256 KiB steps
    assert.equal(bodyChunkSize(32), 1 << 20);
    assert.equal(bodyChunkSize(128), 256 << 10);
    assert.equal(bodyChunkSize(10_000), 256 << 10);
  });

  it("keeps the read-ahead of all transfers near 32 MiB once pieces shrink", () => {
    for (const n of [9, 17, 33, 50, 100, 127]) {
      const size = bodyChunkSize(n);
      assert.equal(size % (256 << 10), 0, `${n}: a multiple of 256 KiB`);
      assert.ok(size * n <= 32 << 20, `${n} transfers × ${size} stays within the budget`);
    }
  });
});
