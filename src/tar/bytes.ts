import { KairosError } from "../sys/errors.js";

/** Thrown for a tar archive that is malformed or ends early. */
export class TarFormatError extends KairosError {
  override readonly name = "TarFormatError";
}

/**
 * Pull-based reader over an async byte source: hands out exact-length slices and body
 * chunks without copying when a chunk already holds them.
 */
export class ByteSource {
  private readonly it: AsyncIterator<Uint8Array>;
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  /** Bytes handed out or skipped so far. */
  position = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  private async fill(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const chunk = Buffer.isBuffer(r.value)
      ? r.value
      : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    return true;
  }

  /** Exactly `n` bytes, or fewer only at end of input. */
  async read(n: number): Promise<Buffer> {
    while (this.buf.length < n) {
      if (!(await this.fill())) break;
    }
    const out = this.buf.subarray(0, Math.min(n, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    this.position += out.length;
    return out;
  }

  /** Up to `max` bytes (at least 1 unless at end), for streaming bodies. */
  async readSome(max: number): Promise<Buffer> {
    if (this.buf.length === 0 && !(await this.fill())) return this.buf;
    const out = this.buf.subarray(0, Math.min(max, this.buf.length));
    this.buf = this.buf.subarray(out.length);
    this.position += out.length;
    return out;
  }

  /** Discard `n` bytes; returns how many were actually available. */
  async skip(n: number): Promise<number> {
    let left = n;
    while (left > 0) {
      const got = await this.readSome(left);
      if (got.length === 0) break;
      left -= got.length;
    }
    return n - left;
  }

  /** Let the source clean up (e.g. close a file) when we stop early. */
  async close(): Promise<void> {
    await this.it.return?.();
  }
}
