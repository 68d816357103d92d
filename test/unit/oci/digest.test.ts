import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { describe, it } from "node:test";
import { DigestMismatchError, parseDigest, VerifyingStream, verifyBytes } from "../../../src/oci/digest.js";

const data = Buffer.from("the quick brown fox");
const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;

async function drain(src: Buffer[], expected: { digest: string; size?: number }): Promise<Buffer[]> {
  const out: Buffer[] = [];
  await pipeline(Readable.from(src), new VerifyingStream(expected, "test blob"), async (s) => {
    for await (const c of s) out.push(c as Buffer);
  });
  return out;
}

describe("VerifyingStream", () => {
  it("passes matching content through", async () => {
    const out = await drain([data.subarray(0, 5), data.subarray(5)], { digest, size: data.length });
    assert.deepEqual(Buffer.concat(out), data);
  });
  it("fails at the end on a digest mismatch", async () => {
    const bad = Buffer.from(data);
    bad[0] = 0x54;
    await assert.rejects(drain([bad], { digest, size: data.length }), (e: unknown) => {
      return (
        e instanceof DigestMismatchError &&
        /test blob: digest is sha256:[0-9a-f]{64}, expected/.test(e.message)
      );
    });
  });
  it("fails on a short blob", async () => {
    await assert.rejects(
      drain([data.subarray(0, 4)], { digest, size: data.length }),
      /ends after 4 of 19 bytes/,
    );
  });
  it("fails on an oversized blob as soon as it overruns, before the end", async () => {
    let pulled = 0;
    async function* endless() {
      for (;;) {
        pulled++;
        yield Buffer.alloc(8);
        if (pulled > 1000) throw new Error("never stopped");
      }
    }
    await assert.rejects(
      pipeline(Readable.from(endless()), new VerifyingStream({ digest, size: 19 }, "blob"), async (s) => {
        for await (const _ of s);
      }),
      /more than the expected 19 bytes/,
    );
    assert.ok(pulled < 10, `pulled ${pulled} chunks`);
  });
  it("verifyBytes checks size and digest", () => {
    verifyBytes(data, { digest, size: data.length }, "x");
    assert.throws(() => verifyBytes(data, { digest, size: 3 }, "x"), DigestMismatchError);
    assert.throws(() => verifyBytes(Buffer.from("other"), { digest }, "x"), DigestMismatchError);
  });
  it("parseDigest refuses malformed digests", () => {
    assert.equal(parseDigest(digest).algorithm, "sha256");
    for (const bad of ["sha256:abc", "md5:" + "a".repeat(32), `sha256:${"A".repeat(64)}`, "nodigest"]) {
      assert.throws(() => parseDigest(bad), /invalid digest/);
    }
  });
});
