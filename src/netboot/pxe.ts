/**
 * Which boot file a network-booting client gets. The client's firmware says what it is in
 * DHCP option 60 ("PXEClient…" or "HTTPClient…") and option 93 (RFC 4578 / IANA processor
 * architecture types); iPXE says so in option 77 ("iPXE") or option 175. First the firmware
 * loads iPXE (over TFTP, or over HTTP for UEFI HTTP boot); iPXE then asks again and gets the
 * URL of our iPXE script, which loads kernel + initrd over HTTP — never iPXE again (no loop).
 */
import { clientArch, type DhcpPacket, macString, Opt, optionText, userClasses } from "./dhcp-packet.js";

export type Firmware = "bios" | "uefi-x64" | "uefi-arm64";

export interface ArchInfo {
  firmware: Firmware;
  /** UEFI HTTP boot: the boot file is a URL, the class "HTTPClient". */
  http: boolean;
}

/** Option 93 values we answer (IANA "Processor Architecture Types"). */
export const ARCHES: Readonly<Record<number, ArchInfo>> = {
  0: { firmware: "bios", http: false },
  7: { firmware: "uefi-x64", http: false },
  // 9 is "EFI x86-64" too (EBC in RFC 4578, but x86-64 firmware sends it).
  9: { firmware: "uefi-x64", http: false },
  11: { firmware: "uefi-arm64", http: false },
  16: { firmware: "uefi-x64", http: true },
  19: { firmware: "uefi-arm64", http: true },
};

/** The iPXE binary each firmware loads, by file name in the iPXE directory. */
export const IPXE_FILES: Readonly<Record<Firmware, string>> = {
  bios: "undionly.kpxe",
  "uefi-x64": "ipxe.efi",
  "uefi-arm64": "ipxe-arm64.efi",
};

export interface PxeClient {
  mac: string;
  /** Raw option 93 value. */
  arch: number;
  info: ArchInfo;
  /** Already running iPXE: give it the script. */
  ipxe: boolean;
  /** Option 97 (client machine UUID), echoed back as PXE requires. */
  uuid?: Buffer;
}

export type Classified = { client: PxeClient } | { ignore: string };

/** Is this DHCP request from a network-boot client we answer? Says why not otherwise. */
export function classifyClient(p: DhcpPacket): Classified {
  const vendor = optionText(p, Opt.CLASS_ID) ?? "";
  const isPxe = vendor.startsWith("PXEClient");
  const isHttp = vendor.startsWith("HTTPClient");
  if (!isPxe && !isHttp)
    return { ignore: "not a PXE or HTTP-boot client (no option 60 PXEClient/HTTPClient)" };
  const arch = clientArch(p);
  if (arch === undefined) return { ignore: "no client architecture (option 93)" };
  const info = ARCHES[arch];
  if (!info) return { ignore: `client architecture ${arch} is not one we boot` };
  const ipxe = userClasses(p).includes("iPXE") || p.options.has(Opt.IPXE);
  return {
    client: {
      mac: macString(p.chaddr),
      arch,
      info: { firmware: info.firmware, http: info.http || isHttp },
      ipxe,
      uuid: p.options.get(Opt.UUID),
    },
  };
}

export interface BootTarget {
  /** TFTP file name, or an http:// URL. */
  file: string;
  /** The option 60 to answer with. */
  vendorClass: "PXEClient" | "HTTPClient";
}

export interface BootUrls {
  /** http://SERVER:PORT (no trailing slash). */
  httpBase: string;
  /** Firmwares we have an iPXE binary for. */
  available: ReadonlySet<Firmware>;
}

/** The boot file for a client, or why it gets none. */
export function bootTarget(c: PxeClient, urls: BootUrls): BootTarget | { none: string } {
  const vendorClass = c.info.http ? "HTTPClient" : "PXEClient";
  if (c.ipxe) return { file: `${urls.httpBase}/boot.ipxe`, vendorClass };
  if (!urls.available.has(c.info.firmware)) {
    return { none: `no iPXE binary ${IPXE_FILES[c.info.firmware]} for ${c.info.firmware} clients` };
  }
  const name = IPXE_FILES[c.info.firmware];
  return c.info.http ? { file: `${urls.httpBase}/ipxe/${name}`, vendorClass } : { file: name, vendorClass };
}

/** The iPXE script: kernel and initrd over HTTP, with the command line. */
export function ipxeScript(o: { httpBase: string; kernel: string; initrd: string; cmdline: string }): string {
  // Named images so the EFI stub finds the initrd by `initrd=` under UEFI too.
  return [
    "#!ipxe",
    "echo kairos-ts: loading the kernel and initrd over HTTP",
    `kernel --name kernel ${o.httpBase}/${encodeURI(o.kernel)} initrd=initrd ${o.cmdline}`,
    `initrd --name initrd ${o.httpBase}/${encodeURI(o.initrd)}`,
    "boot",
    "",
  ].join("\n");
}
