import { createHash, type Hash } from "node:crypto";
import { Transform, type TransformCallback, type TransformOptions } from "node:stream";
import { KairosError } from "../sys/index.js";

const ALGORITHMS: Record<string, number> = { sha256: 64, sha512: 128 };

/** A blob's content differs from what its descriptor promised. */
export class DigestMismatchError extends KairosError {
  override readonly name = "DigestMismatchError";
}

/** Split "sha256:<hex>" after checking it is well-formed; throws on anything else. */
export function parseDigest(digest: string): { algorithm: string; hex: string } {
  const m = /^([a-z0-9]+):([a-f0-9]+)$/.exec(digest);
  const len = m ? ALGORITHMS[m[1]!] : undefined;
  if (!m || len === undefined || m[2]!.length !== len) {
    throw new KairosError(
      `invalid digest '${digest}'`,
      "a digest is sha256:<64 lowercase hex digits> (or sha512:<128>)",
    );
  }
  return { algorithm: m[1]!, hex: m[2]! };
}

export function isDigest(s: string): boolean {
  try {
    parseDigest(s);
    return true;
  } catch {
    return false;
  }
}

/** "sha256:<hex>" of some bytes. */
export function sha256(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

/** Check bytes held in memory against a digest (and size if given). */
export function verifyBytes(data: Buffer, expected: { digest: string; size?: number }, what: string): void {
  if (expected.size !== undefined && data.length !== expected.size) {
    throw new DigestMismatchError(
      `${what}: size is ${data.length} bytes, expected ${expected.size}`,
      "the source is corrupt or was changed while being read",
    );
  }
  const { algorithm } = parseDigest(expected.digest);
  const got = `${algorithm}:${createHash(algorithm).update(data).digest("hex")}`;
  if (got !== expected.digest) {
    throw new DigestMismatchError(
      `${what}: digest is ${got}, expected ${expected.digest}`,
      "the source is corrupt or was changed while being read",
    );
  }
}

/**
 * Passes bytes through while hashing them. Fails as soon as more than `size` bytes arrive,
 * and at the end if fewer arrived or the digest differs. Nothing is emitted after a failure.
 */
export class VerifyingStream extends Transform {
  private readonly hash: Hash;
  private readonly algorithm: string;
  private count = 0;
  constructor(
    private readonly expected: { digest: string; size?: number },
    private readonly what: string,
    streamOptions?: TransformOptions,
  ) {
    super(streamOptions);
    this.algorithm = parseDigest(expected.digest).algorithm;
    this.hash = createHash(this.algorithm);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.count += chunk.length;
    if (this.expected.size !== undefined && this.count > this.expected.size) {
      cb(
        new DigestMismatchError(
          `${this.what}: more than the expected ${this.expected.size} bytes (expected digest ${this.expected.digest})`,
          "the source is corrupt or does not match its manifest",
        ),
      );
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    if (this.expected.size !== undefined && this.count !== this.expected.size) {
      cb(
        new DigestMismatchError(
          `${this.what}: ends after ${this.count} of ${this.expected.size} bytes (digest of those ${this.algorithm}:${this.hash.digest("hex")}, expected ${this.expected.digest})`,
          "the source is truncated or does not match its manifest",
        ),
      );
      return;
    }
    const got = `${this.algorithm}:${this.hash.digest("hex")}`;
    if (got !== this.expected.digest) {
      cb(
        new DigestMismatchError(
          `${this.what}: digest is ${got}, expected ${this.expected.digest}`,
          "the source is corrupt or does not match its manifest",
        ),
      );
      return;
    }
    cb();
  }
}

/** Passes bytes through and records their sha256 and count; read `digest` after the end. */
export class HashingStream extends Transform {
  private readonly hash = createHash("sha256");
  size = 0;
  digest = "";
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    this.hash.update(chunk);
    cb(null, chunk);
  }
  override _flush(cb: TransformCallback): void {
    this.digest = `sha256:${this.hash.digest("hex")}`;
    cb();
  }
}
