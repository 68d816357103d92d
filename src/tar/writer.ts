import { BLOCK, typeflagOf } from "./header.js";
import type { TarHeader } from "./types.js";

/** An entry to write: a header and, for regular files, exactly `header.size` bytes of body. */
export interface WriteEntry {
  header: TarHeader;
  body?: Uint8Array | AsyncIterable<Uint8Array>;
}

const USTAR_MAX_OCTAL = (digits: number) => 8 ** digits - 1;

function writeOctal(block: Buffer, start: number, len: number, value: number): boolean {
  const max = USTAR_MAX_OCTAL(len - 1);
  if (!Number.isInteger(value) || value < 0 || value > max) {
    block.write("0".repeat(len - 1), start, "latin1");
    return false;
  }
  block.write(value.toString(8).padStart(len - 1, "0"), start, len - 1, "latin1");
  return true;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, "utf8"), value, Buffer.from("\n")]);
  const digits = String(body.length).length;
  let len = body.length + digits;
  if (String(len).length !== digits) len = body.length + String(len).length;
  return Buffer.concat([Buffer.from(String(len), "latin1"), body]);
}

/** Split a path into ustar prefix/name, or undefined when it does not fit. */
function splitUstar(path: Buffer): { prefix: Buffer; name: Buffer } | undefined {
  if (path.length <= 100) return { prefix: Buffer.alloc(0), name: path };
  for (let i = path.length - 1; i > 0; i--) {
    if (path[i] !== 0x2f) continue;
    if (i <= 155 && path.length - i - 1 <= 100 && path.length - i - 1 > 0) {
      return { prefix: path.subarray(0, i), name: path.subarray(i + 1) };
    }
    if (i < path.length - 101) break;
  }
  return undefined;
}

function isAscii(b: Buffer): boolean {
  for (const c of b) if (c > 0x7e || c < 0x20) return false;
  return true;
}

function headerBlock(
  h: TarHeader,
  name: Buffer,
  link: Buffer,
  typeflag: string,
  size: number,
  pax: Map<string, Buffer>,
) {
  const block = Buffer.alloc(BLOCK);
  const split = isAscii(name) ? splitUstar(name) : undefined;
  if (split) {
    split.name.copy(block, 0);
    split.prefix.copy(block, 345);
  } else {
    pax.set("path", name);
    name.subarray(0, 100).copy(block, 0);
  }
  if (!writeOctal(block, 100, 8, h.mode & 0o7777)) throw new Error(`bad mode for ${h.path}`);
  if (!writeOctal(block, 108, 8, h.uid)) pax.set("uid", Buffer.from(String(h.uid)));
  if (!writeOctal(block, 116, 8, h.gid)) pax.set("gid", Buffer.from(String(h.gid)));
  if (!writeOctal(block, 124, 12, size)) pax.set("size", Buffer.from(String(size)));
  const secs = Math.floor(h.mtime);
  if (!writeOctal(block, 136, 12, secs) || secs !== h.mtime) pax.set("mtime", Buffer.from(String(h.mtime)));
  block.write(typeflag, 156, "latin1");
  if (link.length > 100 || !isAscii(link)) pax.set("linkpath", link);
  link.subarray(0, 100).copy(block, 157);
  block.write("ustar\0" + "00", 257, "latin1");
  const uname = Buffer.from(h.uname ?? "", "utf8");
  const gname = Buffer.from(h.gname ?? "", "utf8");
  if (uname.length > 32 || !isAscii(uname)) pax.set("uname", uname);
  else uname.copy(block, 265);
  if (gname.length > 32 || !isAscii(gname)) pax.set("gname", gname);
  else gname.copy(block, 297);
  if (!writeOctal(block, 329, 8, h.devmajor ?? 0))
    pax.set("SCHILY.devmajor", Buffer.from(String(h.devmajor)));
  if (!writeOctal(block, 337, 8, h.devminor ?? 0))
    pax.set("SCHILY.devminor", Buffer.from(String(h.devminor)));
  return block;
}

function checksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of block) sum += b;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
}

/**
 * Encode the header blocks for one entry: a pax extended header first when the entry needs
 * one (long or non-ASCII names, big numbers, fractional mtime, xattrs), then the ustar header.
 */
export function encodeHeader(h: TarHeader): Buffer {
  const name = Buffer.from(
    h.type === "directory" && h.path !== "." ? `${h.path}/` : h.path === "." ? "./" : h.path,
    "utf8",
  );
  const link = Buffer.from(h.linkname ?? "", "utf8");
  const size = h.type === "file" ? h.size : 0;
  const pax = new Map<string, Buffer>();
  const main = headerBlock(h, name, link, typeflagOf(h.type), size, pax);
  for (const [k, v] of h.xattrs ?? []) pax.set(`SCHILY.xattr.${k}`, v);
  checksum(main);
  if (pax.size === 0) return main;
  const records = Buffer.concat([...pax].map(([k, v]) => paxRecord(k, v)));
  const paxName = Buffer.from(`PaxHeaders/${h.path}`.slice(0, 99), "utf8").subarray(0, 99);
  const ph = headerBlock(
    {
      ...h,
      path: "",
      type: "file",
      uid: 0,
      gid: 0,
      mtime: Math.floor(h.mtime),
      uname: "",
      gname: "",
      devmajor: 0,
      devminor: 0,
    },
    isAscii(paxName) ? paxName : Buffer.from("PaxHeader"),
    Buffer.alloc(0),
    "x",
    records.length,
    new Map(),
  );
  checksum(ph);
  return Buffer.concat([ph, records, Buffer.alloc(padLen(records.length)), main]);
}

function padLen(n: number): number {
  return (BLOCK - (n % BLOCK)) % BLOCK;
}

/** The two zero blocks that end an archive. */
export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);
/** Shared padding source (never written to): one allocation instead of one per file. */
const ZEROS = Buffer.alloc(BLOCK);

/**
 * Encode entries as a tar byte stream (pax/ustar). Bodies are streamed through;
 * a body shorter or longer than its header's size is an error, not a corrupt archive.
 */
export async function* writeTar(
  entries: AsyncIterable<WriteEntry> | Iterable<WriteEntry>,
): AsyncGenerator<Buffer> {
  for await (const { header, body } of entries) {
    yield encodeHeader(header);
    if (header.type !== "file") continue;
    let written = 0;
    if (body instanceof Uint8Array) {
      written = body.length;
      if (written) yield Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    } else if (body) {
      for await (const chunk of body) {
        written += chunk.length;
        if (written > header.size)
          throw new Error(`tar writer: ${header.path} has more than its ${header.size} bytes`);
        yield Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      }
    }
    if (written !== header.size) {
      throw new Error(`tar writer: ${header.path} has ${written} bytes, its header says ${header.size}`);
    }
    const pad = padLen(written);
    if (pad) yield ZEROS.subarray(0, pad);
  }
  yield END_OF_ARCHIVE;
}
