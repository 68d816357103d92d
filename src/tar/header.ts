import { TarFormatError } from "./bytes.js";
import type { EntryType } from "./types.js";

export const BLOCK = 512;

/** Raw fields of one 512-byte header block, before pax/GNU extensions are applied. */
export interface RawHeader {
  name: Buffer;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtime: number;
  typeflag: string;
  linkname: Buffer;
  uname: string;
  gname: string;
  devmajor: number;
  devminor: number;
}

function cstr(block: Buffer, start: number, len: number): Buffer {
  const field = block.subarray(start, start + len);
  const nul = field.indexOf(0);
  return nul < 0 ? field : field.subarray(0, nul);
}

const isSpace = (b: number) => b === 0x20 || (b >= 0x09 && b <= 0x0d);

/** Parse a numeric field: octal text, or base-256 when the high bit of the first byte is set. */
export function parseNumber(block: Buffer, start: number, len: number, field: string): number {
  // Fast path, on the bytes: six fields per header, and a rootfs layer has 100 000 headers
  // (a subarray, a string, a regex and a trim each cost more than the parse). Anything it
  // does not take (base-256, a bad digit) goes the careful way below, for the same result.
  const end = start + len;
  let i = start;
  while (i < end && isSpace(block[i]!)) i++;
  let v = 0;
  let tail = false;
  let plain = true;
  for (; i < end; i++) {
    const b = block[i]!;
    if (b === 0) break;
    if (b >= 0x30 && b <= 0x37 && !tail) {
      v = v * 8 + (b - 0x30);
    } else if (isSpace(b)) tail = true;
    else {
      plain = false;
      break;
    }
  }
  if (plain) return v;
  return parseNumberSlow(block, start, len, field);
}

function parseNumberSlow(block: Buffer, start: number, len: number, field: string): number {
  const f = block.subarray(start, start + len);
  if (f[0]! & 0x80) {
    // GNU base-256: big-endian two's complement in the remaining bits.
    if (f[0] === 0xff) throw new TarFormatError(`tar header field ${field} is negative`);
    let v = f[0]! & 0x7f;
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i]!;
    if (!Number.isSafeInteger(v)) throw new TarFormatError(`tar header field ${field} is too large`);
    return v;
  }
  const text = f.toString("latin1").replace(/\0.*$/s, "").trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text))
    throw new TarFormatError(`tar header field ${field} is not an octal number: ${JSON.stringify(text)}`);
  return Number.parseInt(text, 8);
}

/** True when the block is all zero bytes (end-of-archive marker). */
export function isZeroBlock(block: Buffer): boolean {
  for (let i = 0; i < block.length; i++) if (block[i] !== 0) return false;
  return true;
}

function checksumOk(block: Buffer): boolean {
  const stored = parseNumber(block, 148, 8, "chksum");
  // The checksum field counts as eight spaces; signed sums (old writers) differ by 256 for
  // every byte above 127.
  let unsigned = 8 * 0x20;
  let high = 0;
  for (let i = 0; i < 148; i++) {
    const b = block[i]!;
    unsigned += b;
    high += b >>> 7;
  }
  for (let i = 156; i < BLOCK; i++) {
    const b = block[i]!;
    unsigned += b;
    high += b >>> 7;
  }
  return stored === unsigned || stored === unsigned - 256 * high;
}

/** Decode one header block; `offset` is only for error messages. */
export function decodeHeader(block: Buffer, offset: number): RawHeader {
  if (!checksumOk(block)) {
    throw new TarFormatError(
      `tar header at byte ${offset} has a bad checksum: the archive is corrupt or not a tar`,
    );
  }
  const magic = block.subarray(257, 263).toString("latin1");
  let name = cstr(block, 0, 100);
  if (magic === "ustar\0") {
    const prefix = cstr(block, 345, 155);
    if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from("/"), name]);
  }
  return {
    name,
    mode: parseNumber(block, 100, 8, "mode"),
    uid: parseNumber(block, 108, 8, "uid"),
    gid: parseNumber(block, 116, 8, "gid"),
    size: parseNumber(block, 124, 12, "size"),
    mtime: parseNumber(block, 136, 12, "mtime"),
    typeflag: String.fromCharCode(block[156]!),
    linkname: cstr(block, 157, 100),
    uname: cstr(block, 265, 32).toString("utf8"),
    gname: cstr(block, 297, 32).toString("utf8"),
    devmajor: magic.startsWith("ustar") ? parseNumber(block, 329, 8, "devmajor") : 0,
    devminor: magic.startsWith("ustar") ? parseNumber(block, 337, 8, "devminor") : 0,
  };
}

const TYPES: Record<string, EntryType> = {
  "0": "file",
  "\0": "file",
  "7": "file",
  "1": "hardlink",
  "2": "symlink",
  "3": "chardev",
  "4": "blockdev",
  "5": "directory",
  D: "directory",
  "6": "fifo",
};

export function entryTypeOf(typeflag: string): EntryType | undefined {
  return TYPES[typeflag];
}

const FLAGS: Record<EntryType, string> = {
  file: "0",
  hardlink: "1",
  symlink: "2",
  chardev: "3",
  blockdev: "4",
  directory: "5",
  fifo: "6",
};

export function typeflagOf(type: EntryType): string {
  return FLAGS[type];
}

/** Parse pax extended header records ("LEN key=value\n"), keeping values as bytes. */
export function parsePax(data: Buffer, offset: number): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // some writers pad with NULs
    const sp = data.indexOf(0x20, pos);
    if (sp < 0) throw new TarFormatError(`malformed pax record in header at byte ${offset}`);
    const len = Number.parseInt(data.subarray(pos, sp).toString("latin1"), 10);
    if (!Number.isInteger(len) || len <= sp - pos || pos + len > data.length) {
      throw new TarFormatError(`malformed pax record length in header at byte ${offset}`);
    }
    const record = data.subarray(sp + 1, pos + len - 1); // drop trailing "\n"
    const eq = record.indexOf(0x3d);
    if (eq < 0) throw new TarFormatError(`malformed pax record (no '=') in header at byte ${offset}`);
    out.set(record.subarray(0, eq).toString("utf8"), record.subarray(eq + 1));
    pos += len;
  }
  return out;
}
