/**
 * TFTP packets (RFC 1350) and option negotiation (RFC 2347 OACK, RFC 2348 blksize, RFC 2349
 * timeout and tsize, RFC 7440 windowsize). The decoder throws TftpPacketError on anything
 * malformed; the server answers such packets with an error or drops them.
 */

export const Op = { RRQ: 1, WRQ: 2, DATA: 3, ACK: 4, ERROR: 5, OACK: 6 } as const;

export const TftpError = {
  UNDEFINED: 0,
  NOT_FOUND: 1,
  ACCESS: 2,
  DISK_FULL: 3,
  ILLEGAL: 4,
  UNKNOWN_TID: 5,
  EXISTS: 6,
  NO_USER: 7,
  OPTIONS: 8,
} as const;

export class TftpPacketError extends Error {}

export interface TftpRequest {
  op: typeof Op.RRQ | typeof Op.WRQ;
  filename: string;
  mode: string;
  /** Option names lower-cased, in the order sent. */
  options: Map<string, string>;
}

export type TftpPacket =
  | TftpRequest
  | { op: typeof Op.DATA; block: number; data: Buffer }
  | { op: typeof Op.ACK; block: number }
  | { op: typeof Op.ERROR; code: number; message: string }
  | { op: typeof Op.OACK; options: Map<string, string> };

/** NUL-terminated strings from `at` to the end; the packet must end with a NUL. */
function strings(buf: Buffer, at: number): string[] {
  if (buf.length <= at || buf[buf.length - 1] !== 0) throw new TftpPacketError("strings not NUL-terminated");
  return buf
    .subarray(at, buf.length - 1)
    .toString("latin1")
    .split("\0");
}

export function decodeTftp(buf: Buffer): TftpPacket {
  if (buf.length < 4) throw new TftpPacketError(`packet of ${buf.length} bytes is too short`);
  const op = buf.readUInt16BE(0);
  switch (op) {
    case Op.RRQ:
    case Op.WRQ: {
      const s = strings(buf, 2);
      if (s.length < 2 || s.length % 2 !== 0) throw new TftpPacketError("request needs filename and mode");
      const [filename, mode] = s as [string, string];
      if (!filename) throw new TftpPacketError("empty file name");
      const options = new Map<string, string>();
      for (let i = 2; i < s.length; i += 2) options.set(s[i]!.toLowerCase(), s[i + 1]!);
      return { op, filename, mode: mode.toLowerCase(), options };
    }
    case Op.DATA:
      return { op, block: buf.readUInt16BE(2), data: buf.subarray(4) };
    case Op.ACK:
      if (buf.length !== 4) throw new TftpPacketError("ACK must be 4 bytes");
      return { op, block: buf.readUInt16BE(2) };
    case Op.ERROR: {
      const s = buf.length > 4 ? strings(buf, 4) : [""];
      return { op, code: buf.readUInt16BE(2), message: s[0] ?? "" };
    }
    case Op.OACK: {
      const s = strings(buf, 2);
      if (s.length % 2 !== 0) throw new TftpPacketError("OACK options must come in pairs");
      const options = new Map<string, string>();
      for (let i = 0; i < s.length; i += 2) options.set(s[i]!.toLowerCase(), s[i + 1]!);
      return { op, options };
    }
    default:
      throw new TftpPacketError(`unknown opcode ${op}`);
  }
}

export function encodeRequest(r: Omit<TftpRequest, "op"> & { op?: TftpRequest["op"] }): Buffer {
  const parts = [r.filename, r.mode];
  for (const [k, v] of r.options) parts.push(k, v);
  return Buffer.concat([u16(r.op ?? Op.RRQ), Buffer.from(`${parts.join("\0")}\0`, "latin1")]);
}

export function encodeAck(block: number): Buffer {
  return Buffer.concat([u16(Op.ACK), u16(block & 0xffff)]);
}

export function encodeError(code: number, message: string): Buffer {
  return Buffer.concat([u16(Op.ERROR), u16(code), Buffer.from(`${message}\0`, "latin1")]);
}

export function encodeOack(options: Map<string, string>): Buffer {
  const parts: string[] = [];
  for (const [k, v] of options) parts.push(k, v);
  return Buffer.concat([u16(Op.OACK), Buffer.from(`${parts.join("\0")}\0`, "latin1")]);
}

/** The 4-byte DATA header for `block` (mod 65536: blocks wrap around on big files). */
export function dataHeader(block: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt16BE(Op.DATA, 0);
  b.writeUInt16BE(block & 0xffff, 2);
  return b;
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

export interface Negotiated {
  blksize: number;
  windowsize: number;
  /** Retransmission timeout in ms. */
  timeoutMs: number;
  /** Options to acknowledge in an OACK (empty: none requested that we accept). */
  ack: Map<string, string>;
}

export const MAX_BLKSIZE = 65464;

/** Accept what the client asked for within the RFCs' bounds; ignore the rest (RFC 2347). */
export function negotiate(
  options: Map<string, string>,
  size: number,
  limits: { defaultTimeoutMs: number; maxWindow: number },
): Negotiated {
  const out: Negotiated = { blksize: 512, windowsize: 1, timeoutMs: limits.defaultTimeoutMs, ack: new Map() };
  const int = (v: string) => (/^\d{1,6}$/.test(v) ? Number(v) : Number.NaN);
  const bs = int(options.get("blksize") ?? "");
  if (bs >= 8) {
    out.blksize = Math.min(bs, MAX_BLKSIZE);
    out.ack.set("blksize", String(out.blksize));
  }
  if (options.get("tsize") === "0") out.ack.set("tsize", String(size));
  const to = int(options.get("timeout") ?? "");
  if (to >= 1 && to <= 255) {
    out.timeoutMs = to * 1000;
    out.ack.set("timeout", String(to));
  }
  const ws = int(options.get("windowsize") ?? "");
  if (ws >= 1 && ws <= 65535) {
    out.windowsize = Math.min(ws, limits.maxWindow);
    out.ack.set("windowsize", String(out.windowsize));
  }
  return out;
}
