import { KairosError } from "../sys/errors.js";

/** Thrown for a tar archive that is malformed or ends early. */
export class TarFormatError extends KairosError {
  override readonly name = "TarFormatError";
}

/**
 * Pull-based reader over an async byte source: hands out exact-length slices and body
 * chunks without copying when a chunk already holds them. A read that straddles two chunks
 * copies only the bytes it returns (a 512-byte header), never the rest of the next chunk:
 * with 256 KiB decompressor chunks, joining whole chunks copied most of a layer once more.
 */
export class ByteSource {
  private readonly it: AsyncIterator<Uint8Array>;
  /** Unread bytes of the current chunk. */
  private buf: Buffer = Buffer.alloc(0);
  private ended = false;
  /** Bytes handed out or skipped so far. */
  position = 0;

  constructor(source: AsyncIterable<Uint8Array>) {
    this.it = source[Symbol.asyncIterator]();
  }

  /** The next non-empty chunk of the source, or undefined at its end. */
  private async next(): Promise<Buffer | undefined> {
    while (!this.ended) {
      const r = await this.it.next();
      if (r.done) {
        this.ended = true;
        break;
      }
      if (r.value.byteLength === 0) continue;
      return Buffer.isBuffer(r.value)
        ? r.value
        : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    }
    return undefined;
  }

  /** Exactly `n` bytes, or fewer only at end of input. */
  async read(n: number): Promise<Buffer> {
    if (this.buf.length >= n) {
      const out = this.buf.subarray(0, n);
      this.buf = this.buf.subarray(n);
      this.position += n;
      return out;
    }
    const parts: Buffer[] = [];
    let have = 0;
    while (have < n) {
      if (this.buf.length === 0) {
        const chunk = await this.next();
        if (!chunk) break;
        this.buf = chunk;
      }
      const take = this.buf.subarray(0, Math.min(n - have, this.buf.length));
      parts.push(take);
      have += take.length;
      this.buf = this.buf.subarray(take.length);
    }
    this.position += have;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, have);
  }

  /** Up to `max` bytes (at least 1 unless at end), for streaming bodies. */
  async readSome(max: number): Promise<Buffer> {
    if (this.buf.length === 0) {
      const chunk = await this.next();
      if (!chunk) return this.buf;
      this.buf = chunk;
    }
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

  /** Read and discard everything up to the end of the source; returns how many bytes that was. */
  async drain(): Promise<number> {
    let n = this.buf.length;
    this.position += this.buf.length;
    this.buf = Buffer.alloc(0);
    for (let chunk = await this.next(); chunk; chunk = await this.next()) {
      n += chunk.length;
      this.position += chunk.length;
    }
    return n;
  }

  /** Let the source clean up (e.g. close a file) when we stop early. */
  async close(): Promise<void> {
    await this.it.return?.();
  }
}
