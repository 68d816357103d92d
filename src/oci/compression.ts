import { type Duplex, Transform, type TransformCallback, type TransformOptions } from "node:stream";
import { createGunzip, type ZlibOptions } from "node:zlib";
import { Decompress } from "fzstd";
import { filterProcess, findTool } from "../sys/index.js";

export type Compression = "gzip" | "zstd" | "none";

/** Recognise a compressed stream by its first bytes. */
export function sniffCompression(head: Buffer): Compression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return "gzip";
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return "zstd";
  return "none";
}

/** Streaming zstd decompression with fzstd (pure JS). */
export class ZstdDecompress extends Transform {
  private readonly d: Decompress;
  constructor() {
    super();
    this.d = new Decompress((chunk) => {
      this.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.d.push(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }
  override _flush(cb: TransformCallback): void {
    try {
      this.d.push(new Uint8Array(0), true);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb();
  }
}

/**
 * A decompressor for `kind`. gzip: node:zlib in the thread pool (2.7 s for the default base's
 * 740 MB layer here, where a `gzip -dc` child took 9–11 s). zstd: the `zstd` program when
 * installed (it runs on another core at several hundred MB/s; pure-JS fzstd manages ~100 MB/s),
 * else fzstd.
 */
function decompressor(kind: "gzip" | "zstd", highWaterMark?: number): Duplex {
  // zlib streams pass stream options through; the ZlibOptions type just does not list them.
  if (kind === "gzip") return createGunzip({ chunkSize: 256 * 1024, highWaterMark } as ZlibOptions);
  return findTool("zstd") ? filterProcess("zstd", ["-dcq"]) : new ZstdDecompress();
}

/**
 * Decompresses gzip or zstd, passes anything else through; decided from the first bytes,
 * so a layer whose media type lies about its compression still reads correctly.
 */
export class AutoDecompress extends Transform {
  private inner: Duplex | null | undefined;
  constructor(private readonly streamOptions?: TransformOptions) {
    super(streamOptions);
  }
  private failed: Error | undefined;
  private head: Buffer[] = [];
  private headLen = 0;
  private choose(): Buffer {
    const head = Buffer.concat(this.head);
    this.head = [];
    const kind = sniffCompression(head);
    if (kind === "none") {
      this.inner = null;
      return head;
    }
    const inner = decompressor(kind, this.streamOptions?.highWaterMark);
    inner.on("data", (d: Buffer) => {
      if (!this.push(d)) inner.pause();
    });
    // A decompression error is held back until the input has ended: a corrupt blob then fails
    // with the digest mismatch its verifier (upstream) reports, which says what is wrong.
    inner.on("error", (e) => {
      this.failed ??= e;
    });
    this.inner = inner;
    return head;
  }
  override _read(size: number): void {
    this.inner?.resume();
    super._read(size);
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    let data = chunk;
    if (this.inner === undefined) {
      this.head.push(chunk);
      this.headLen += chunk.length;
      if (this.headLen < 4) {
        cb();
        return;
      }
      data = this.choose();
    }
    if (this.inner === null) {
      cb(null, data);
      return;
    }
    const inner = this.inner!;
    if (this.failed || inner.destroyed) {
      cb(); // the rest of the input is read (and verified upstream), not decompressed
      return;
    }
    if (inner.write(data)) {
      cb();
      return;
    }
    const go = () => {
      inner.off("drain", go);
      inner.off("close", go);
      cb();
    };
    inner.on("drain", go);
    inner.on("close", go);
  }
  override _flush(cb: TransformCallback): void {
    if (this.failed) {
      cb(this.failed);
      return;
    }
    if (this.inner === undefined) {
      const data = this.choose();
      if (this.inner === null) {
        cb(null, data);
        return;
      }
      this.inner!.write(data);
    }
    if (this.inner === null) {
      cb();
      return;
    }
    const inner = this.inner!;
    inner.once("end", () => cb());
    inner.once("error", (e) => cb(e));
    inner.resume();
    inner.end();
  }
}
