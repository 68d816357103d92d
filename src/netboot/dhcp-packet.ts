/**
 * DHCP/BOOTP packets (RFC 2131, RFC 2132): a strict decoder that throws DhcpPacketError on
 * anything malformed (the servers drop such packets) and an encoder. Options are kept as raw
 * bytes keyed by code, in the order they came; the helpers below read the few we need.
 */

/** The fixed BOOTP header is 236 bytes, then the 4-byte magic cookie, then options. */
const HEADER = 236;
const COOKIE = 0x63825363;
/** Smallest packet a DHCP client must accept (RFC 2131 §2): we pad replies to this. */
const MIN_REPLY = 300;

export const BOOTREQUEST = 1;
export const BOOTREPLY = 2;

export const DhcpMessage = {
  DISCOVER: 1,
  OFFER: 2,
  REQUEST: 3,
  DECLINE: 4,
  ACK: 5,
  NAK: 6,
  RELEASE: 7,
  INFORM: 8,
} as const;

/** Option codes we read or write. */
export const Opt = {
  SUBNET_MASK: 1,
  ROUTER: 3,
  DNS: 6,
  HOSTNAME: 12,
  VENDOR: 43,
  REQUESTED_IP: 50,
  LEASE_TIME: 51,
  OVERLOAD: 52,
  MESSAGE_TYPE: 53,
  SERVER_ID: 54,
  PARAM_LIST: 55,
  MAX_SIZE: 57,
  CLASS_ID: 60,
  CLIENT_ID: 61,
  TFTP_SERVER: 66,
  BOOTFILE: 67,
  USER_CLASS: 77,
  CLIENT_ARCH: 93,
  CLIENT_NDI: 94,
  UUID: 97,
  IPXE: 175,
} as const;

export class DhcpPacketError extends Error {}

export interface DhcpPacket {
  op: number;
  htype: number;
  hlen: number;
  hops: number;
  xid: number;
  secs: number;
  flags: number;
  ciaddr: string;
  yiaddr: string;
  siaddr: string;
  giaddr: string;
  /** Client hardware address: the first hlen bytes of chaddr. */
  chaddr: Buffer;
  sname: string;
  file: string;
  options: Map<number, Buffer>;
}

function ip(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

/** "a.b.c.d" → 4 bytes; throws on anything else. */
export function ipBytes(addr: string): Buffer {
  const parts = addr.split(".");
  if (parts.length !== 4 || parts.some((p) => !/^\d{1,3}$/.test(p) || Number(p) > 255)) {
    throw new DhcpPacketError(`'${addr}' is not an IPv4 address`);
  }
  return Buffer.from(parts.map(Number));
}

export function ipToInt(addr: string): number {
  return ipBytes(addr).readUInt32BE(0);
}

export function intToIp(n: number): string {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0);
  return ip(b, 0);
}

function cString(buf: Buffer): string {
  const nul = buf.indexOf(0);
  return buf.subarray(0, nul < 0 ? buf.length : nul).toString("latin1");
}

function readOptions(buf: Buffer, start: number, end: number, into: Map<number, Buffer>): void {
  let i = start;
  while (i < end) {
    const code = buf[i]!;
    if (code === 0) {
      i++;
      continue;
    }
    if (code === 255) return;
    if (i + 1 >= end) throw new DhcpPacketError(`option ${code} has no length byte`);
    const len = buf[i + 1]!;
    if (i + 2 + len > end) throw new DhcpPacketError(`option ${code} runs past the end of the packet`);
    const value = buf.subarray(i + 2, i + 2 + len);
    // RFC 3396: a repeated option is one long option split in pieces.
    const prev = into.get(code);
    into.set(code, prev ? Buffer.concat([prev, value]) : Buffer.from(value));
    i += 2 + len;
  }
}

/** Decode a DHCP packet; throws DhcpPacketError when it is not one. */
export function decodeDhcp(buf: Buffer): DhcpPacket {
  if (buf.length < HEADER + 4) throw new DhcpPacketError(`packet of ${buf.length} bytes is too short`);
  if (buf.readUInt32BE(HEADER) !== COOKIE) throw new DhcpPacketError("no DHCP magic cookie");
  const op = buf[0]!;
  if (op !== BOOTREQUEST && op !== BOOTREPLY) throw new DhcpPacketError(`bad op ${op}`);
  const hlen = buf[2]!;
  if (hlen > 16) throw new DhcpPacketError(`hardware address length ${hlen} > 16`);
  const options = new Map<number, Buffer>();
  readOptions(buf, HEADER + 4, buf.length, options);
  // Option overload (52): sname and/or file carry more options.
  const overload = options.get(Opt.OVERLOAD)?.[0] ?? 0;
  if (overload & 1) readOptions(buf, 108, 236, options);
  if (overload & 2) readOptions(buf, 44, 108, options);
  return {
    op,
    htype: buf[1]!,
    hlen,
    hops: buf[3]!,
    xid: buf.readUInt32BE(4),
    secs: buf.readUInt16BE(8),
    flags: buf.readUInt16BE(10),
    ciaddr: ip(buf, 12),
    yiaddr: ip(buf, 16),
    siaddr: ip(buf, 20),
    giaddr: ip(buf, 24),
    chaddr: Buffer.from(buf.subarray(28, 28 + hlen)),
    sname: overload & 2 ? "" : cString(buf.subarray(44, 108)),
    file: overload & 1 ? "" : cString(buf.subarray(108, 236)),
    options,
  };
}

function putString(out: Buffer, at: number, size: number, s: string, what: string): void {
  const b = Buffer.from(s, "latin1");
  if (b.length >= size) throw new DhcpPacketError(`${what} '${s}' is longer than ${size - 1} bytes`);
  b.copy(out, at);
}

/** Encode a packet (options in insertion order, values over 255 bytes split per RFC 3396). */
export function encodeDhcp(p: DhcpPacket): Buffer {
  const head = Buffer.alloc(HEADER + 4);
  head[0] = p.op;
  head[1] = p.htype;
  head[2] = p.hlen;
  head[3] = p.hops;
  head.writeUInt32BE(p.xid >>> 0, 4);
  head.writeUInt16BE(p.secs, 8);
  head.writeUInt16BE(p.flags, 10);
  ipBytes(p.ciaddr).copy(head, 12);
  ipBytes(p.yiaddr).copy(head, 16);
  ipBytes(p.siaddr).copy(head, 20);
  ipBytes(p.giaddr).copy(head, 24);
  p.chaddr.subarray(0, 16).copy(head, 28);
  putString(head, 44, 64, p.sname, "server name");
  putString(head, 108, 128, p.file, "boot file name");
  head.writeUInt32BE(COOKIE, HEADER);
  const parts: Buffer[] = [head];
  for (const [code, value] of p.options) {
    for (let i = 0; i === 0 || i < value.length; i += 255) {
      const piece = value.subarray(i, i + 255);
      parts.push(Buffer.from([code, piece.length]), piece);
    }
  }
  parts.push(Buffer.from([255]));
  const out = Buffer.concat(parts);
  return out.length >= MIN_REPLY ? out : Buffer.concat([out, Buffer.alloc(MIN_REPLY - out.length)]);
}

/** The DHCP message type (option 53), or undefined for a plain BOOTP packet. */
export function messageType(p: DhcpPacket): number | undefined {
  const v = p.options.get(Opt.MESSAGE_TYPE);
  return v?.length === 1 ? v[0] : undefined;
}

export function optionText(p: DhcpPacket, code: number): string | undefined {
  const v = p.options.get(code);
  return v ? v.toString("latin1") : undefined;
}

export function optionIp(p: DhcpPacket, code: number): string | undefined {
  const v = p.options.get(code);
  return v?.length === 4 ? ip(v, 0) : undefined;
}

/** Option 93 (RFC 4578): a list of 16-bit architecture types; the first one counts. */
export function clientArch(p: DhcpPacket): number | undefined {
  const v = p.options.get(Opt.CLIENT_ARCH);
  return v && v.length >= 2 ? v.readUInt16BE(0) : undefined;
}

/** Option 77 (RFC 3004) holds length-prefixed classes; iPXE sends a bare "iPXE" instead. */
export function userClasses(p: DhcpPacket): string[] {
  const v = p.options.get(Opt.USER_CLASS);
  if (!v || v.length === 0) return [];
  const out: string[] = [];
  let i = 0;
  while (i < v.length) {
    const len = v[i]!;
    if (len === 0 || i + 1 + len > v.length) return [v.toString("latin1")];
    out.push(v.subarray(i + 1, i + 1 + len).toString("latin1"));
    i += 1 + len;
  }
  return out;
}

export function macString(chaddr: Buffer): string {
  return [...chaddr].map((b) => b.toString(16).padStart(2, "0")).join(":");
}
