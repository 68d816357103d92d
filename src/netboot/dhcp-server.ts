/**
 * The DHCP side of network boot. Proxy mode (the default, as pixiecore): beside the site's own
 * DHCP server, answer only PXE/HTTP-boot clients, with the boot file and never an address
 * (yiaddr 0.0.0.0), on port 67 (DHCPDISCOVER → OFFER) and on 4011 (the PXE boot-server
 * request → ACK). Full mode (an isolated lab network only): also hand out addresses from one
 * range to every client, PXE or not.
 */
import type { RemoteInfo, Socket } from "node:dgram";
import {
  BOOTREPLY,
  BOOTREQUEST,
  DhcpMessage,
  type DhcpPacket,
  decodeDhcp,
  encodeDhcp,
  ipBytes,
  macString,
  messageType,
  Opt,
  optionIp,
} from "./dhcp-packet.js";
import type { LeasePool } from "./leases.js";
import { type BootTarget, type BootUrls, bootTarget, classifyClient } from "./pxe.js";
import { bindUdp } from "./udp.js";

export interface FullDhcp {
  pool: LeasePool;
  subnetMask: string;
  router?: string;
  dns?: string[];
  leaseSeconds: number;
}

export interface DhcpPolicy {
  /** Our address on the boot network: next-server, server identifier, URLs. */
  serverIp: string;
  urls: BootUrls;
  /** Set for full DHCP mode. */
  full?: FullDhcp;
  now?: () => number;
}

export interface Answer {
  reply?: DhcpPacket;
  /** Where it goes: "broadcast" (client has no address yet), or unicast to the sender. */
  to?: "broadcast" | "sender" | "relay";
  /** What happened, for the log. */
  note: string;
}

const ZERO = "0.0.0.0";

function baseReply(req: DhcpPacket, type: number, serverIp: string): DhcpPacket {
  return {
    op: BOOTREPLY,
    htype: req.htype,
    hlen: req.hlen,
    hops: 0,
    xid: req.xid,
    secs: 0,
    flags: req.flags,
    ciaddr: ZERO,
    yiaddr: ZERO,
    siaddr: serverIp,
    giaddr: req.giaddr,
    chaddr: req.chaddr,
    sname: "",
    file: "",
    options: new Map([
      [Opt.MESSAGE_TYPE, Buffer.from([type])],
      [Opt.SERVER_ID, ipBytes(serverIp)],
    ]),
  };
}

/** Add the boot fields PXE clients read (RFC 4578, PXE 2.1 §2.2). */
function addBoot(reply: DhcpPacket, target: BootTarget, uuid: Buffer | undefined): void {
  reply.file = target.file;
  reply.options.set(Opt.CLASS_ID, Buffer.from(target.vendorClass));
  if (uuid) reply.options.set(Opt.UUID, uuid);
  // PXE discovery control = 8: no boot-server discovery, boot the file named here.
  if (target.vendorClass === "PXEClient") reply.options.set(Opt.VENDOR, Buffer.from([6, 1, 8, 255]));
}

function replyDestination(req: DhcpPacket): Answer["to"] {
  if (req.giaddr !== ZERO) return "relay";
  return req.ciaddr !== ZERO ? "sender" : "broadcast";
}

/** Decide the answer to one request that arrived on `port` ("dhcp" = 67, "pxe" = 4011). */
export function answer(req: DhcpPacket, port: "dhcp" | "pxe", policy: DhcpPolicy): Answer {
  if (req.op !== BOOTREQUEST) return { note: "not a request" };
  if (req.htype !== 1 || req.hlen !== 6)
    return { note: `hardware type ${req.htype}/${req.hlen} not Ethernet` };
  const type = messageType(req);
  if (type === undefined) return { note: "BOOTP without DHCP message type" };
  const mac = macString(req.chaddr);
  const classified = classifyClient(req);
  const target =
    "client" in classified ? bootTarget(classified.client, policy.urls) : { none: classified.ignore };
  const boot = "file" in target ? target : undefined;
  const uuid = "client" in classified ? classified.client.uuid : undefined;
  const now = (policy.now ?? Date.now)();

  if (port === "pxe") {
    // PXE boot-server request on 4011: the client already has its address.
    if (type !== DhcpMessage.REQUEST && type !== DhcpMessage.INFORM)
      return { note: `${mac}: type ${type} on 4011` };
    if (!boot) return { note: `${mac}: ${"none" in target ? target.none : "no boot file"}` };
    const reply = baseReply(req, DhcpMessage.ACK, policy.serverIp);
    reply.ciaddr = req.ciaddr;
    addBoot(reply, boot, uuid);
    return { reply, to: "sender", note: `${mac}: PXE ACK ${boot.file}` };
  }

  const full = policy.full;
  if (!full) {
    // ProxyDHCP: offers to boot clients only, never an address.
    if (type !== DhcpMessage.DISCOVER) return { note: `${mac}: proxy ignores type ${type}` };
    if (!boot) return { note: `${mac}: ${"none" in target ? target.none : "no boot file"}` };
    const reply = baseReply(req, DhcpMessage.OFFER, policy.serverIp);
    addBoot(reply, boot, uuid);
    return { reply, to: replyDestination(req), note: `${mac}: proxy OFFER ${boot.file}` };
  }

  const withLease = (reply: DhcpPacket) => {
    reply.options.set(Opt.SUBNET_MASK, ipBytes(full.subnetMask));
    if (full.router) reply.options.set(Opt.ROUTER, ipBytes(full.router));
    if (full.dns?.length) reply.options.set(Opt.DNS, Buffer.concat(full.dns.map(ipBytes)));
    const t = Buffer.alloc(4);
    t.writeUInt32BE(full.leaseSeconds);
    reply.options.set(Opt.LEASE_TIME, t);
    if (boot) addBoot(reply, boot, uuid);
  };
  switch (type) {
    case DhcpMessage.DISCOVER: {
      const ip = full.pool.offer(mac, optionIp(req, Opt.REQUESTED_IP), now);
      if (!ip) return { note: `${mac}: no free address in the range` };
      const reply = baseReply(req, DhcpMessage.OFFER, policy.serverIp);
      reply.yiaddr = ip;
      withLease(reply);
      return { reply, to: replyDestination(req), note: `${mac}: OFFER ${ip}${boot ? ` ${boot.file}` : ""}` };
    }
    case DhcpMessage.REQUEST: {
      const serverId = optionIp(req, Opt.SERVER_ID);
      if (serverId && serverId !== policy.serverIp) {
        full.pool.release(mac);
        return { note: `${mac}: chose server ${serverId}` };
      }
      const ip = optionIp(req, Opt.REQUESTED_IP) ?? (req.ciaddr !== ZERO ? req.ciaddr : undefined);
      if (!ip || !full.pool.bind(mac, ip, now)) {
        // Only NAK an address that is ours to manage; stay silent about others' (RFC 2131 §4.3.2).
        if (ip && !full.pool.inRange(ip) && !serverId) return { note: `${mac}: REQUEST for foreign ${ip}` };
        const nak = baseReply(req, DhcpMessage.NAK, policy.serverIp);
        nak.siaddr = ZERO;
        return {
          reply: nak,
          to: req.giaddr !== ZERO ? "relay" : "broadcast",
          note: `${mac}: NAK ${ip ?? "?"}`,
        };
      }
      const reply = baseReply(req, DhcpMessage.ACK, policy.serverIp);
      reply.yiaddr = ip;
      reply.ciaddr = req.ciaddr;
      withLease(reply);
      return { reply, to: replyDestination(req), note: `${mac}: ACK ${ip}${boot ? ` ${boot.file}` : ""}` };
    }
    case DhcpMessage.RELEASE:
      full.pool.release(mac, req.ciaddr);
      return { note: `${mac}: RELEASE ${req.ciaddr}` };
    case DhcpMessage.DECLINE: {
      const ip = optionIp(req, Opt.REQUESTED_IP);
      if (ip) full.pool.decline(mac, ip, now);
      return { note: `${mac}: DECLINE ${ip ?? "?"}` };
    }
    case DhcpMessage.INFORM: {
      const reply = baseReply(req, DhcpMessage.ACK, policy.serverIp);
      reply.ciaddr = req.ciaddr;
      reply.options.set(Opt.SUBNET_MASK, ipBytes(full.subnetMask));
      if (boot) addBoot(reply, boot, uuid);
      return { reply, to: "sender", note: `${mac}: INFORM ACK` };
    }
    default:
      return { note: `${mac}: type ${type} ignored` };
  }
}

export interface DhcpServerOptions {
  policy: DhcpPolicy;
  /** Address to listen on (default 0.0.0.0: broadcasts only reach a wildcard socket). */
  address?: string;
  /** Default 67 and 4011; 0 picks a free port (tests), false leaves the port out. */
  dhcpPort?: number | false;
  pxePort?: number | false;
  /** Where "broadcast" replies go (default 255.255.255.255:68; tests use loopback). */
  broadcast?: { address: string; port: number };
  log?: (line: string) => void;
}

export interface RunningDhcpServer {
  dhcpPort?: number;
  pxePort?: number;
  stats(): { received: number; answered: number; malformed: number };
  close(): Promise<void>;
}

/**
 * Listen on 67 and 4011. Port 67 is bound with SO_REUSEADDR so the site's DHCP server can run
 * on the same host (dnsmasq with --bind-interfaces does the same); replies are sent from a
 * socket bound to the server's own address, which makes the kernel send a 255.255.255.255
 * broadcast out of that address's interface even on a host with no default route there.
 */
export async function startDhcpServer(o: DhcpServerOptions): Promise<RunningDhcpServer> {
  const address = o.address ?? "0.0.0.0";
  const bcast = o.broadcast ?? { address: "255.255.255.255", port: 68 };
  const log = o.log ?? (() => {});
  const stats = { received: 0, answered: 0, malformed: 0 };
  const sockets: Socket[] = [];
  const close = async () => {
    await Promise.all(sockets.map((s) => new Promise<void>((r) => s.close(() => r()))));
  };

  const handle = (kind: "dhcp" | "pxe", sender: Socket) => (msg: Buffer, from: RemoteInfo) => {
    stats.received++;
    let req: DhcpPacket;
    try {
      req = decodeDhcp(msg);
    } catch {
      stats.malformed++;
      return;
    }
    let a: Answer;
    try {
      a = answer(req, kind, o.policy);
    } catch (err) {
      stats.malformed++;
      log(`dhcp: dropped a packet: ${(err as Error).message}`);
      return;
    }
    log(`dhcp${kind === "pxe" ? ":4011" : ""}: ${a.note}`);
    if (!a.reply) return;
    let out: Buffer;
    try {
      out = encodeDhcp(a.reply);
    } catch (err) {
      log(`dhcp: cannot encode the reply: ${(err as Error).message}`);
      return;
    }
    stats.answered++;
    const [port, host] =
      a.to === "sender"
        ? [from.port, from.address]
        : a.to === "relay"
          ? [67, req.giaddr]
          : [bcast.port, bcast.address];
    sender.send(out, port, host, (err) => {
      if (err) log(`dhcp: send to ${host}:${port} failed: ${err.message}`);
    });
  };

  try {
    let dhcpPort: number | undefined;
    let pxePort: number | undefined;
    if (o.dhcpPort !== false) {
      const listen = await bindUdp(
        { address, port: o.dhcpPort ?? 67, what: "DHCP", reuseAddr: true, broadcast: true },
        "--dhcp-port",
      );
      sockets.push(listen);
      dhcpPort = listen.address().port;
      let sender = listen;
      const serverIp = o.policy.serverIp;
      if (address === "0.0.0.0" && serverIp !== "0.0.0.0" && serverIp !== "127.0.0.1") {
        sender = await bindUdp(
          { address: serverIp, port: dhcpPort, what: "DHCP replies", reuseAddr: true, broadcast: true },
          "--dhcp-port",
        );
        sockets.push(sender);
        // Unicast to our address (renewals, relays) lands on the more specific socket.
        sender.on("message", handle("dhcp", sender));
      }
      listen.on("message", handle("dhcp", sender));
    }
    if (o.pxePort !== false) {
      const pxe = await bindUdp({ address, port: o.pxePort ?? 4011, what: "PXE (4011)" }, "--pxe-port");
      sockets.push(pxe);
      pxePort = pxe.address().port;
      pxe.on("message", handle("pxe", pxe));
    }
    for (const s of sockets) s.on("error", (err) => log(`dhcp socket error: ${err.message}`));
    return { dhcpPort, pxePort, stats: () => ({ ...stats }), close };
  } catch (err) {
    await close();
    throw err;
  }
}
