/**
 * Minimal clients for the netboot tests and benchmarks: a TFTP reader (RFC 1350 + options,
 * with windowsize) and builders for the DHCP requests PXE firmware and iPXE send.
 */
import { createSocket } from "node:dgram";
import {
  BOOTREQUEST,
  DhcpMessage,
  type DhcpPacket,
  encodeDhcp,
  ipBytes,
  Opt,
} from "../../src/netboot/dhcp-packet.js";
import { decodeTftp, encodeAck, encodeRequest, Op } from "../../src/netboot/tftp-packet.js";

export interface TftpGetOptions {
  host: string;
  port: number;
  file: string;
  options?: Record<string, string>;
  /** Give up after this long (default 20 s). */
  timeoutMs?: number;
}

export interface TftpGetResult {
  data: Buffer;
  oack?: Map<string, string>;
}

export class TftpClientError extends Error {
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(message);
  }
}

/** Read one file. Acks every window's last block (or the last in-order block on a gap). */
export function tftpGet(o: TftpGetOptions): Promise<TftpGetResult> {
  const sock = createSocket("udp4");
  const opts = new Map(Object.entries(o.options ?? {}));
  let blksize = 512;
  let window = 1;
  const chunks: Buffer[] = [];
  let expected = 1;
  let inWindow = 0;
  let peer: { address: string; port: number } | undefined;
  let oack: Map<string, string> | undefined;
  return new Promise<TftpGetResult>((resolve, reject) => {
    const overall = setTimeout(
      () => finish(new TftpClientError(`timeout reading ${o.file}`)),
      o.timeoutMs ?? 20_000,
    );
    let idle: NodeJS.Timeout | undefined;
    const finish = (err?: Error) => {
      clearTimeout(overall);
      clearTimeout(idle);
      sock.close();
      if (err) reject(err);
      else resolve({ data: Buffer.concat(chunks), oack });
    };
    const ack = (block: number) => {
      if (peer) sock.send(encodeAck(block), peer.port, peer.address);
      clearTimeout(idle);
      // Re-ack when the server goes quiet (a lost ACK or a lost block).
      idle = setTimeout(() => ack(block), 1000);
    };
    sock.on("message", (msg, from) => {
      peer ??= { address: from.address, port: from.port };
      if (from.port !== peer.port) return;
      let p: ReturnType<typeof decodeTftp>;
      try {
        p = decodeTftp(msg);
      } catch (err) {
        finish(err as Error);
        return;
      }
      if (p.op === Op.ERROR) return finish(new TftpClientError(`tftp error ${p.code}: ${p.message}`, p.code));
      if (p.op === Op.OACK) {
        oack = p.options;
        blksize = Number(p.options.get("blksize") ?? 512);
        window = Number(p.options.get("windowsize") ?? 1);
        ack(0);
        return;
      }
      if (p.op !== Op.DATA) return;
      if (p.block !== (expected & 0xffff)) {
        // Out of order or a duplicate: ack the last block we have so the server resumes there.
        if (p.block !== ((expected - 1) & 0xffff)) ack(expected - 1);
        return;
      }
      chunks.push(Buffer.from(p.data));
      expected++;
      inWindow++;
      if (p.data.length < blksize) {
        sock.send(encodeAck(p.block), peer.port, peer.address, () => finish());
        clearTimeout(idle);
        return;
      }
      if (inWindow >= window) {
        inWindow = 0;
        ack(p.block);
      }
    });
    sock.bind(0, o.host === "127.0.0.1" ? "127.0.0.1" : undefined, () => {
      sock.send(encodeRequest({ filename: o.file, mode: "octet", options: opts }), o.port, o.host);
    });
  });
}

export interface PxeRequestOptions {
  mac: string;
  xid?: number;
  type?: number;
  /** Option 93; undefined leaves it out. */
  arch?: number;
  /** Option 60 (default PXEClient:Arch:…). */
  vendor?: string;
  ipxe?: boolean;
  ciaddr?: string;
  requested?: string;
  serverId?: string;
  uuid?: Buffer;
}

/** A DHCP request as PXE firmware (or iPXE) sends it. */
export function pxeRequest(o: PxeRequestOptions): Buffer {
  const arch = o.arch;
  const options = new Map<number, Buffer>([
    [Opt.MESSAGE_TYPE, Buffer.from([o.type ?? DhcpMessage.DISCOVER])],
  ]);
  if (o.vendor !== "") {
    options.set(
      Opt.CLASS_ID,
      Buffer.from(o.vendor ?? `PXEClient:Arch:${String(arch ?? 0).padStart(5, "0")}:UNDI:003016`),
    );
  }
  if (arch !== undefined) {
    const a = Buffer.alloc(2);
    a.writeUInt16BE(arch);
    options.set(Opt.CLIENT_ARCH, a);
  }
  if (o.uuid) options.set(Opt.UUID, o.uuid);
  if (o.requested) options.set(Opt.REQUESTED_IP, ipBytes(o.requested));
  if (o.serverId) options.set(Opt.SERVER_ID, ipBytes(o.serverId));
  if (o.ipxe) options.set(Opt.USER_CLASS, Buffer.from("iPXE"));
  const p: DhcpPacket = {
    op: BOOTREQUEST,
    htype: 1,
    hlen: 6,
    hops: 0,
    xid: o.xid ?? 0x1234,
    secs: 0,
    flags: 0x8000,
    ciaddr: o.ciaddr ?? "0.0.0.0",
    yiaddr: "0.0.0.0",
    siaddr: "0.0.0.0",
    giaddr: "0.0.0.0",
    chaddr: Buffer.from(o.mac.split(":").map((h) => Number.parseInt(h, 16))),
    sname: "",
    file: "",
    options,
  };
  return encodeDhcp(p);
}
