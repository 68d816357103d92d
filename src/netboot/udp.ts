/** Bind a UDP socket with errors that say what to do (port taken, port needs root). */
import { createSocket, type Socket } from "node:dgram";
import { KairosError } from "../sys/index.js";

export interface UdpBind {
  address: string;
  port: number;
  /** What the port is for, in errors ("ProxyDHCP", "TFTP"). */
  what: string;
  /** SO_REUSEADDR: share port 67 with the site's DHCP server on the same host. */
  reuseAddr?: boolean;
  broadcast?: boolean;
}

export function bindError(
  err: NodeJS.ErrnoException,
  where: string,
  what: string,
  flag: string,
): KairosError {
  if (err.code === "EADDRINUSE") {
    return new KairosError(
      `cannot listen for ${what} on ${where}: the port is taken by another program`,
      `stop it (e.g. a dnsmasq or tftpd on this host) or choose another port with ${flag}`,
    );
  }
  if (err.code === "EACCES") {
    return new KairosError(
      `cannot listen for ${what} on ${where}: ports below 1024 need root`,
      "run as root (or grant CAP_NET_BIND_SERVICE to node), or choose ports above 1023 for a test",
    );
  }
  if (err.code === "EADDRNOTAVAIL") {
    return new KairosError(
      `cannot listen for ${what} on ${where}: no interface has that address`,
      "pass an address of this host (ip -4 addr) or leave it out",
    );
  }
  return new KairosError(`cannot listen for ${what} on ${where}: ${err.code ?? err.message}`);
}

export async function bindUdp(o: UdpBind, flag = "the port option"): Promise<Socket> {
  const sock = createSocket({ type: "udp4", reuseAddr: o.reuseAddr ?? false });
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      sock.close();
      reject(bindError(err, `${o.address}:${o.port}`, o.what, flag));
    };
    sock.once("error", onError);
    sock.bind({ address: o.address, port: o.port }, () => {
      sock.off("error", onError);
      resolve();
    });
  });
  if (o.broadcast) sock.setBroadcast(true);
  return sock;
}
