/**
 * The network boot server: ProxyDHCP (or full DHCP) + TFTP for iPXE + HTTP for the iPXE
 * script, kernel, initrd, squashfs and cloud-config. Firmware → iPXE (TFTP, or HTTP for UEFI
 * HTTP boot) → boot.ipxe (HTTP) → kernel + initrd (HTTP) → the initramfs fetches the squashfs
 * (HTTP) and the agent the config_url.
 */
import { access, copyFile, mkdtemp, rm } from "node:fs/promises";
import { networkInterfaces, tmpdir } from "node:os";
import { basename, join } from "node:path";
import { KairosError } from "../sys/index.js";
import { ipToInt } from "./dhcp-packet.js";
import { type RunningDhcpServer, startDhcpServer } from "./dhcp-server.js";
import { type RunningHttpServer, serveDirectory } from "./http.js";
import { LeasePool } from "./leases.js";
import { type Firmware, IPXE_FILES, ipxeScript } from "./pxe.js";
import { type RunningTftpServer, startTftpServer } from "./tftp.js";

/** Debian's `ipxe` package. */
export const DEFAULT_IPXE_DIR = "/usr/lib/ipxe";
/** AuroraBoot's netboot_http_port default. */
export const DEFAULT_NETBOOT_HTTP_PORT = 8090;

export interface NetbootFileSet {
  kernel: string;
  initrd: string;
  squashfs: string;
  /** Cloud-config served as /config.yaml and passed as config_url. */
  config?: string;
}

/**
 * The kernel command line. Without `cmdline` ours: the rootfs and config URLs, DHCP in the
 * initramfs, no COS_OEM/COS_PERSISTENT mounts, serial console last. With `cmdline`
 * (AuroraBoot's netboot.cmdline) it replaces everything but root= and config_url=, as
 * AuroraBoot does.
 */
export function bootCmdline(o: { squashfsUrl: string; configUrl?: string; cmdline?: string }): string {
  const head = [`root=live:${o.squashfsUrl}`, ...(o.configUrl ? [`config_url=${o.configUrl}`] : [])];
  const rest = o.cmdline?.trim()
    ? o.cmdline.trim()
    : "rd.neednet=1 ip=dhcp rd.cos.disable netboot console=tty1 console=ttyS0";
  return [...head, rest].join(" ");
}

/**
 * Our address on the boot network: the bind address if it is one, else the IPv4 address of
 * `iface`, else the host's only non-loopback IPv4 address.
 */
export function serverAddress(
  o: { address?: string; iface?: string },
  ifaces = networkInterfaces(),
): { ip: string; netmask?: string } {
  const v4 = (name: string) => (ifaces[name] ?? []).filter((a) => a.family === "IPv4");
  if (o.iface) {
    const a = v4(o.iface)[0];
    if (!a) {
      throw new KairosError(
        `interface '${o.iface}' has no IPv4 address`,
        `give it one (ip addr add … dev ${o.iface}) or choose another; interfaces: ${Object.keys(ifaces).join(", ")}`,
      );
    }
    if (o.address && o.address !== "0.0.0.0" && o.address !== a.address) {
      throw new KairosError(`--listen-addr ${o.address} is not the address of ${o.iface} (${a.address})`);
    }
    return { ip: a.address, netmask: a.netmask };
  }
  const all = Object.entries(ifaces).flatMap(([, list]) => (list ?? []).filter((a) => a.family === "IPv4"));
  if (o.address && o.address !== "0.0.0.0") {
    return { ip: o.address, netmask: all.find((a) => a.address === o.address)?.netmask };
  }
  const external = all.filter((a) => !a.internal);
  if (external.length === 1) return { ip: external[0]!.address, netmask: external[0]!.netmask };
  throw new KairosError(
    external.length === 0
      ? "this host has no network interface with an IPv4 address"
      : `this host has several IPv4 addresses (${external.map((a) => a.address).join(", ")})`,
    "say which network to boot on with --interface NAME (or --listen-addr ADDRESS)",
  );
}

export interface NetbootServerOptions {
  files: NetbootFileSet;
  /** Kernel command line replacing our default (AuroraBoot's netboot.cmdline). */
  cmdline?: string;
  /** Bind address for every port (default 0.0.0.0). */
  address?: string;
  iface?: string;
  /** Our address as clients reach it (default: from address/iface, see serverAddress). */
  serverIp?: string;
  httpPort?: number;
  tftpPort?: number;
  dhcpPort?: number | false;
  pxePort?: number | false;
  ipxeDir?: string;
  /** Full DHCP on this range instead of ProxyDHCP. */
  dhcpRange?: { start: string; end: string };
  leaseSeconds?: number;
  maxTransfers?: number;
  /** Replies that would be broadcast go here instead (loopback tests and benchmarks). */
  broadcast?: { address: string; port: number };
  log?: (line: string) => void;
}

export interface RunningNetbootServer {
  serverIp: string;
  httpUrl: string;
  cmdline: string;
  /** Firmwares we can boot (an iPXE binary exists for them). */
  firmwares: Firmware[];
  http: RunningHttpServer;
  tftp: RunningTftpServer;
  dhcp: RunningDhcpServer;
  close(): Promise<void>;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

export async function startNetbootServer(o: NetbootServerOptions): Promise<RunningNetbootServer> {
  const log = o.log ?? (() => {});
  const address = o.address ?? "0.0.0.0";
  const where = o.serverIp
    ? { ip: o.serverIp, netmask: undefined }
    : serverAddress({ address, iface: o.iface });
  const ipxeDir = o.ipxeDir ?? DEFAULT_IPXE_DIR;
  const firmwares: Firmware[] = [];
  for (const [fw, name] of Object.entries(IPXE_FILES) as [Firmware, string][]) {
    if (await exists(join(ipxeDir, name))) firmwares.push(fw);
  }
  if (firmwares.length === 0) {
    throw new KairosError(
      `no iPXE binaries (${Object.values(IPXE_FILES).join(", ")}) in ${ipxeDir}`,
      "install the Debian package 'ipxe' or pass --ipxe-dir",
    );
  }
  for (const [what, p] of Object.entries(o.files)) {
    if (p && !(await exists(p))) throw new KairosError(`netboot ${what} ${p} does not exist`);
  }
  const root = join(o.files.kernel, "..");
  for (const p of [o.files.initrd, o.files.squashfs]) {
    if (join(p, "..") !== root) {
      throw new KairosError(
        "kernel, initrd and squashfs must be in one directory",
        `found ${p} outside ${root}`,
      );
    }
  }
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const c of closers.reverse()) await c().catch(() => {});
  };
  try {
    // TFTP serves only the iPXE binaries, copied (Debian's ipxe.efi is a symlink to /boot).
    const bootDir = await mkdtemp(join(tmpdir(), "kairos-netboot-tftp-"));
    closers.push(() => rm(bootDir, { recursive: true, force: true }));
    for (const fw of firmwares) await copyFile(join(ipxeDir, IPXE_FILES[fw]), join(bootDir, IPXE_FILES[fw]));
    const http0 = o.httpPort ?? DEFAULT_NETBOOT_HTTP_PORT;
    const extra = new Map<string, { file: string } | { text: string }>();
    const http = await serveDirectory({
      root,
      listen: `${address}:${http0}`,
      extra,
      onRequest: (l) => log(`http: ${l}`),
    });
    closers.push(() => http.close());
    const httpBase = `http://${where.ip}:${http.port}`;
    const cmdline = bootCmdline({
      squashfsUrl: `${httpBase}/${encodeURI(basename(o.files.squashfs))}`,
      configUrl: o.files.config ? `${httpBase}/config.yaml` : undefined,
      cmdline: o.cmdline,
    });
    extra.set("/boot.ipxe", {
      text: ipxeScript({
        httpBase,
        kernel: basename(o.files.kernel),
        initrd: basename(o.files.initrd),
        cmdline,
      }),
    });
    if (o.files.config) extra.set("/config.yaml", { file: o.files.config });
    for (const fw of firmwares) extra.set(`/ipxe/${IPXE_FILES[fw]}`, { file: join(bootDir, IPXE_FILES[fw]) });

    const tftp = await startTftpServer({
      root: bootDir,
      address,
      port: o.tftpPort ?? 69,
      maxTransfers: o.maxTransfers,
      log,
    });
    closers.push(() => tftp.close());

    let full: Parameters<typeof startDhcpServer>[0]["policy"]["full"];
    if (o.dhcpRange) {
      const mask = where.netmask ?? "255.255.255.0";
      const net = (ip: string) => (ipToInt(ip) & ipToInt(mask)) >>> 0;
      for (const a of [o.dhcpRange.start, o.dhcpRange.end]) {
        if (net(a) !== net(where.ip)) {
          throw new KairosError(
            `--dhcp-range address ${a} is not on the boot network ${where.ip}/${mask}`,
            "give a range inside the interface's subnet",
          );
        }
      }
      const leaseSeconds = o.leaseSeconds ?? 3600;
      full = {
        pool: new LeasePool({ ...o.dhcpRange, leaseSeconds }),
        subnetMask: mask,
        leaseSeconds,
      };
    }
    const dhcp = await startDhcpServer({
      policy: { serverIp: where.ip, urls: { httpBase, available: new Set(firmwares) }, full },
      address,
      dhcpPort: o.dhcpPort,
      pxePort: o.pxePort,
      broadcast: o.broadcast,
      log,
    });
    closers.push(() => dhcp.close());
    return { serverIp: where.ip, httpUrl: httpBase, cmdline, firmwares, http, tftp, dhcp, close: closeAll };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
