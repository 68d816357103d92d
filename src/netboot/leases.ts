/**
 * Address leases for the full DHCP mode (an isolated lab network): in memory, only inside the
 * configured range, one address per client (MAC), offers held briefly, declined addresses
 * kept out of the pool for a while. Time is passed in so tests control it.
 */

import { KairosError } from "../sys/index.js";
import { intToIp, ipToInt } from "./dhcp-packet.js";

export interface Lease {
  mac: string;
  ip: string;
  /** ms since the epoch. */
  expires: number;
  bound: boolean;
}

export interface LeasePoolOptions {
  start: string;
  end: string;
  leaseSeconds: number;
  /** How long an offer reserves its address (default 60 s). */
  offerSeconds?: number;
}

/** Parse "--dhcp-range START,END". */
export function parseDhcpRange(text: string): { start: string; end: string } {
  const m = /^\s*([\d.]+)\s*,\s*([\d.]+)\s*$/.exec(text);
  let ok = false;
  if (m) {
    try {
      ok = ipToInt(m[1]!) <= ipToInt(m[2]!);
    } catch {
      ok = false;
    }
  }
  if (!m || !ok) {
    throw new KairosError(
      `--dhcp-range '${text}' is not START,END`,
      "give two IPv4 addresses, lowest first, e.g. --dhcp-range 10.77.0.100,10.77.0.150",
    );
  }
  return { start: m[1]!, end: m[2]! };
}

export class LeasePool {
  private readonly first: number;
  private readonly last: number;
  private readonly byMac = new Map<string, Lease>();
  private readonly byIp = new Map<number, Lease>();
  private readonly declined = new Map<number, number>();

  constructor(private readonly o: LeasePoolOptions) {
    this.first = ipToInt(o.start);
    this.last = ipToInt(o.end);
  }

  inRange(ip: string): boolean {
    try {
      const n = ipToInt(ip);
      return n >= this.first && n <= this.last;
    } catch {
      return false;
    }
  }

  private drop(l: Lease): void {
    this.byMac.delete(l.mac);
    this.byIp.delete(ipToInt(l.ip));
  }

  private live(now: number, ip: number): Lease | undefined {
    const l = this.byIp.get(ip);
    if (l && l.expires <= now) {
      this.drop(l);
      return undefined;
    }
    return l;
  }

  /** The address to offer `mac`: its current one, the one it asks for if free, else the first free. */
  offer(mac: string, requested: string | undefined, now: number): string | undefined {
    const mine = this.byMac.get(mac);
    if (mine && mine.expires > now) {
      if (!mine.bound) mine.expires = now + (this.o.offerSeconds ?? 60) * 1000;
      return mine.ip;
    }
    if (mine) this.drop(mine);
    const usable = (n: number) => !this.live(now, n) && (this.declined.get(n) ?? 0) <= now;
    let pick: number | undefined;
    if (requested && this.inRange(requested) && usable(ipToInt(requested))) pick = ipToInt(requested);
    for (let n = this.first; pick === undefined && n <= this.last; n++) if (usable(n)) pick = n;
    if (pick === undefined) return undefined;
    const lease = { mac, ip: intToIp(pick), expires: now + (this.o.offerSeconds ?? 60) * 1000, bound: false };
    this.byMac.set(mac, lease);
    this.byIp.set(pick, lease);
    return lease.ip;
  }

  /** Confirm `ip` for `mac` (DHCPREQUEST); false when it is not theirs to take. */
  bind(mac: string, ip: string, now: number): boolean {
    if (!this.inRange(ip)) return false;
    const n = ipToInt(ip);
    const holder = this.live(now, n);
    if (holder && holder.mac !== mac) return false;
    if ((this.declined.get(n) ?? 0) > now) return false;
    const mine = this.byMac.get(mac);
    if (mine && mine.ip !== ip) this.drop(mine);
    const lease = { mac, ip, expires: now + this.o.leaseSeconds * 1000, bound: true };
    this.byMac.set(mac, lease);
    this.byIp.set(n, lease);
    return true;
  }

  release(mac: string, ip?: string): void {
    const l = this.byMac.get(mac);
    if (l && (ip === undefined || l.ip === ip)) this.drop(l);
  }

  /** The client found `ip` in use (DHCPDECLINE): keep it out of the pool for 10 minutes. */
  decline(mac: string, ip: string, now: number): void {
    this.release(mac, ip);
    if (this.inRange(ip)) this.declined.set(ipToInt(ip), now + 600_000);
  }

  leases(now: number): Lease[] {
    return [...this.byMac.values()].filter((l) => l.expires > now);
  }
}
