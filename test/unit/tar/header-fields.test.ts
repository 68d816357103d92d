/** Numeric header fields and the checksum, on the byte-level fast path and the careful one. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseNumber } from "../../../src/tar/header.js";
import { decodeHeader, encodeHeader } from "../../../src/tar/index.js";

const field = (bytes: Buffer | string, len = 12) => {
  const b = Buffer.alloc(len);
  (typeof bytes === "string" ? Buffer.from(bytes, "latin1") : bytes).copy(b);
  return b;
};

test("parseNumber: what writers put in octal fields", () => {
  const cases: [string, number][] = [
    ["00000000644\0", 0o644],
    ["644", 0o644], // NUL padded
    ["  644 ", 0o644], // spaces around (old writers)
    ["0000644 \0", 0o644],
    ["\t755\n", 0o755],
    ["", 0],
    ["    ", 0],
    ["77777777777\0", 0o77777777777],
    ["12\0garbage", 0o12], // the first NUL ends the field
  ];
  for (const [text, want] of cases)
    assert.equal(parseNumber(field(text), 0, 12, "f"), want, JSON.stringify(text));
});

test("parseNumber: base-256 and refused fields", () => {
  const big = Buffer.alloc(12);
  big[0] = 0x80;
  big.writeUIntBE(2 ** 40 + 5, 6, 6);
  assert.equal(parseNumber(big, 0, 12, "size"), 2 ** 40 + 5);
  const neg = Buffer.alloc(12, 0xff);
  assert.throws(() => parseNumber(neg, 0, 12, "size"), /size is negative/);
  for (const bad of ["12 3", "0o644", "9", "64x", "-1"]) {
    assert.throws(() => parseNumber(field(bad), 0, 12, "mode"), /mode is not an octal number/, bad);
  }
});

test("decodeHeader: unsigned and signed checksums are accepted, a changed byte is refused", () => {
  const header = encodeHeader({
    path: "a.txt",
    type: "file",
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 3,
    mtime: 1700000000,
  });
  const block = Buffer.from(header.subarray(0, 512));
  // Bytes above 127 after the name's NUL (ignored as name): the two sums now differ.
  block[60] = 0xe9;
  block[61] = 0xfc;
  const stamp = (signedSum: boolean) => {
    let sum = 0;
    for (let i = 0; i < 512; i++) {
      const b = i >= 148 && i < 156 ? 0x20 : block[i]!;
      sum += signedSum && b > 127 ? b - 256 : b;
    }
    Buffer.from(`${sum.toString(8).padStart(6, "0")}\0 `, "latin1").copy(block, 148);
  };
  stamp(false);
  assert.equal(decodeHeader(block, 0).size, 3);
  stamp(true);
  assert.equal(decodeHeader(block, 0).size, 3);
  block[10] = block[10]! ^ 1;
  assert.throws(() => decodeHeader(block, 0), /bad checksum/);
});
