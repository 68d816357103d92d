import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import { posix } from "node:path";
import type { Readable } from "node:stream";
import { KairosError } from "../sys/index.js";
import { TarFormatError } from "../tar/bytes.js";
import { BLOCK, decodeHeader, entryTypeOf, isZeroBlock, parsePax } from "../tar/index.js";
import { normalizeEntryPath } from "../tar/path.js";
import { READ_CHUNK } from "./util.js";

/** Where one archive member's bytes are. */
export interface Member {
  path: string;
  type: string;
  /** Byte offset of the member's data in the archive file. */
  offset: number;
  size: number;
  linkname?: string;
}

const pad = (n: number) => (BLOCK - (n % BLOCK)) % BLOCK;

/**
 * An index of an archive file's members from one pass over its headers (bodies are skipped,
 * not read), so members can then be read directly by offset without extracting anything.
 */
export class TarIndex {
  private constructor(
    readonly file: string,
    readonly members: Map<string, Member>,
  ) {}

  static async scan(file: string, label = file): Promise<TarIndex> {
    const fh = await open(file, "r").catch((e: NodeJS.ErrnoException) => {
      throw new KairosError(`cannot open ${label}: ${e.code === "ENOENT" ? "no such file" : e.message}`);
    });
    const members = new Map<string, Member>();
    try {
      const { size: fileSize } = await fh.stat();
      const block = Buffer.alloc(BLOCK);
      let pos = 0;
      let pax = new Map<string, Buffer>();
      let longName: string | undefined;
      const readAt = async (buf: Buffer, at: number) => (await fh.read(buf, 0, buf.length, at)).bytesRead;
      for (;;) {
        const n = await readAt(block, pos);
        if (n === 0) throw new TarFormatError(`${label} ends early: no end-of-archive marker (truncated?)`);
        if (n < BLOCK) throw new TarFormatError(`${label} ends early inside a header at byte ${pos}`);
        if (isZeroBlock(block)) break;
        const raw = decodeHeader(block, pos);
        const dataAt = pos + BLOCK;
        const t = raw.typeflag;
        if (t === "x" || t === "g" || t === "L" || t === "K") {
          if (raw.size > 1 << 20)
            throw new TarFormatError(`${label}: extension header at byte ${pos} too large`);
          const data = Buffer.alloc(raw.size);
          if ((await readAt(data, dataAt)) < raw.size)
            throw new TarFormatError(`${label} ends early in a header`);
          if (t === "x") pax = new Map([...pax, ...parsePax(data, pos)]);
          else if (t === "L")
            longName = data.subarray(0, data.indexOf(0) < 0 ? data.length : data.indexOf(0)).toString("utf8");
          pos = dataAt + raw.size + pad(raw.size);
          continue;
        }
        const type = entryTypeOf(t) ?? "other";
        const size = type === "file" ? Number(pax.get("size")?.toString() ?? raw.size) : raw.size;
        const name = pax.get("path")?.toString("utf8") ?? longName ?? raw.name.toString("utf8");
        const linkname = pax.get("linkpath")?.toString("utf8") ?? raw.linkname.toString("utf8");
        pax = new Map();
        longName = undefined;
        if (dataAt + size > fileSize) {
          throw new TarFormatError(
            `${label} ends early: member ${name} needs ${size} bytes, the file is truncated`,
          );
        }
        const path = normalizeEntryPath(name, `member of ${label}`);
        if (path) members.set(path, { path, type, offset: dataAt, size, ...(linkname ? { linkname } : {}) });
        pos = dataAt + (type === "file" || type === "other" ? size + pad(size) : 0);
      }
    } finally {
      await fh.close();
    }
    return new TarIndex(file, members);
  }

  /** The regular-file member at `path`, following symlinks and hardlinks inside the archive. */
  resolve(path: string): Member | undefined {
    let p = path;
    for (let hops = 0; hops < 16; hops++) {
      const m = this.members.get(p);
      if (!m) return undefined;
      if (m.type === "file") return m;
      if (m.type === "hardlink" && m.linkname) p = normalizeEntryPath(m.linkname, "link");
      else if (m.type === "symlink" && m.linkname) {
        const target = posix.normalize(posix.join(posix.dirname(p), m.linkname));
        if (target.startsWith("..") || target.startsWith("/")) return undefined;
        p = target;
      } else return undefined;
    }
    return undefined;
  }

  has(path: string): boolean {
    return this.resolve(path) !== undefined;
  }

  /** Stream a member's bytes. */
  open(m: Member, start = 0, end?: number): Readable {
    if (m.size === 0) return createReadStream(this.file, { start: m.offset, end: m.offset - 1 });
    return createReadStream(this.file, {
      highWaterMark: READ_CHUNK,
      start: m.offset + start,
      end: m.offset + Math.min(end ?? m.size, m.size) - 1,
    });
  }

  /** Read a small member whole, refusing more than `limit` bytes. */
  async read(path: string, limit: number, what: string): Promise<Buffer> {
    const m = this.resolve(path);
    if (!m) throw new KairosError(`${what}: ${path} is missing from the archive`);
    if (m.size > limit)
      throw new KairosError(`${what}: ${path} is ${m.size} bytes, more than the limit of ${limit}`);
    const fh = await open(this.file, "r");
    try {
      const buf = Buffer.alloc(m.size);
      await fh.read(buf, 0, m.size, m.offset);
      return buf;
    } finally {
      await fh.close();
    }
  }
}
