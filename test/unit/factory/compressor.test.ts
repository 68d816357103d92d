import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";
import { CpioWriter, startCompressor } from "../../../src/factory/index.js";

/** Compressible but not trivial: random words repeated. */
function sample(): Buffer[] {
  const words = Array.from({ length: 64 }, () => randomBytes(12).toString("hex"));
  return Array.from({ length: 300 }, (_, i) =>
    Buffer.from(Array.from({ length: 200 + (i % 37) * 50 }, (_, j) => words[(i * j) % 64]).join(" ")),
  );
}

describe("streaming compressor", () => {
  it("zstd: piece by piece gives the bytes of compressing the whole at once", async () => {
    const pieces = sample();
    const c = startCompressor("zstd", 12);
    for (let i = 0; i < pieces.length; i += 7) await c.write(pieces.slice(i, i + 7));
    const streamed = await c.end();
    const whole = execFileSync("zstd", ["-12", "-T2", "-q", "-c", "--check"], {
      input: Buffer.concat(pieces),
    });
    assert.ok(streamed.equals(whole));
  });

  it("gzip: piece by piece gives the bytes of gzipSync of the whole", async () => {
    const pieces = sample();
    const c = startCompressor("gzip", 9);
    for (const p of pieces) await c.write([p]);
    const streamed = await c.end();
    assert.ok(streamed.equals(gzipSync(Buffer.concat(pieces), { level: 9 })));
    assert.ok(gunzipSync(streamed).equals(Buffer.concat(pieces)));
  });

  it("a compressor that fails is an error at write or end, never a truncated result", async () => {
    // A compressor that exits 1 at once, without reading its input.
    const c = startCompressor("zstd", 12, { zstd: "/bin/false" });
    await assert.rejects(async () => {
      for (let i = 0; i < 50; i++) await c.write(sample());
      await c.end();
    }, /false/);
  });

  it("abort stops zstd at once (the process is gone) and end() then refuses", async () => {
    const dir = mkdtempSync(join(tmpdir(), "kairos-zstd-"));
    try {
      const pidFile = join(dir, "pid");
      const wrapper = join(dir, "zstd");
      writeFileSync(wrapper, `#!/bin/sh\necho $$ >${pidFile}\nexec zstd "$@"\n`, { mode: 0o755 });
      const c = startCompressor("zstd", 19, { zstd: wrapper });
      await c.write(sample());
      const pid = Number(readFileSync(pidFile, "utf8"));
      assert.ok(existsSync(`/proc/${pid}`), "zstd runs");
      await c.abort();
      assert.ok(!existsSync(`/proc/${pid}`), "zstd is gone after abort");
      await assert.rejects(c.end(), /aborted/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("abort of gzip and of none: end() refuses, nothing is returned", async () => {
    for (const kind of ["gzip", "none"] as const) {
      const c = startCompressor(kind);
      await c.write(sample());
      await c.abort();
      await assert.rejects(c.end(), /aborted/, kind);
    }
  });

  it("refuses a level the compressor would clamp or misread", () => {
    assert.throws(() => startCompressor("zstd", 99), /zstd level 99 is out of range/);
    assert.throws(() => startCompressor("zstd", Number.NaN), /out of range/);
    assert.throws(() => startCompressor("gzip", 10), /gzip level 10 is out of range/);
  });

  it("cpio take() hands over pieces in order; finish() returns the rest with the trailer", () => {
    const whole = new CpioWriter({ mtime: 1 });
    const taken = new CpioWriter({ mtime: 1 });
    const parts: Buffer[] = [];
    for (const w of [whole, taken]) {
      w.directory("lib");
      w.file("lib/a", "alpha");
    }
    parts.push(...taken.take());
    assert.deepEqual(taken.take(), []);
    for (const w of [whole, taken]) w.file("lib/b", Buffer.alloc(1001, 7));
    parts.push(...taken.take(), taken.finish());
    assert.ok(Buffer.concat(parts).equals(whole.finish()));
    assert.equal(taken.length, whole.length);
  });
});
