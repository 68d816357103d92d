import { readdir, readFile, readlink } from "node:fs/promises";
import { basename, join } from "node:path";

/**
 * The part of upstream's `system` block (kairos-sdk state.Runtime.System, which is
 * zcalusic/sysinfo's SysInfo) that can be read from files under a root, with sysinfo's JSON
 * keys. Left out: what sysinfo gets from ioctls, DMI tables it parses itself, or guesses
 * (network port/speed, memory, storage, board, chassis, bios, hypervisor, timezone).
 */
export interface SystemFacts {
  node: { hostname?: string; machineid?: string };
  product: { name?: string; vendor?: string; version?: string; serial?: string; uuid?: string; sku?: string };
  cpu: { vendor?: string; model?: string; cache?: number; cpus?: number; cores?: number; threads?: number };
  network: { name: string; driver?: string; macaddress?: string }[];
}

/** A file's text with white space trimmed, or "" (sysinfo's slurpFile). */
async function slurp(path: string): Promise<string> {
  // Device-tree strings end in NUL.
  return (await readFile(path, "utf8").catch(() => "")).replace(/\0+$/, "").trim();
}

/** Only the keys that have a value, as sysinfo's `omitempty`. */
function present<T extends Record<string, unknown>>(o: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(o).filter(([, v]) => v !== "" && v !== 0 && v !== undefined),
  ) as Partial<T>;
}

/** The machine id as upstream's kairos-sdk reads it (denisbrodbeck/machineid: dbus path first). */
export async function readMachineId(root: string): Promise<string> {
  return (await slurp(join(root, "var/lib/dbus/machine-id"))) || (await slurp(join(root, "etc/machine-id")));
}

/**
 * upstream's state `uuid` (kairos-sdk utils.UUID): `$UUID` when set, else the machine id and
 * the hostname joined by "-" (the hostname as Go's os.Hostname reads it on Linux).
 */
export async function nodeUuid(root: string, env: NodeJS.ProcessEnv): Promise<string> {
  if (env.UUID) return env.UUID;
  return `${await readMachineId(root)}-${await slurp(join(root, "proc/sys/kernel/hostname"))}`;
}

/** CPU facts from /proc/cpuinfo, counted as sysinfo does (threads: one per `processor` line). */
export function cpuFromCpuinfo(text: string): SystemFacts["cpu"] {
  let vendor = "";
  let model = "";
  let cache = 0;
  let threads = 0;
  let physical = "";
  const cpus = new Set<string>();
  const cores = new Set<string>();
  for (const line of text.split("\n")) {
    const at = line.indexOf(":");
    if (at < 0) continue;
    const key = line.slice(0, at).trim();
    const value = line.slice(at + 1).trim();
    if (key === "processor") threads++;
    else if (key === "physical id") {
      physical = value;
      cpus.add(value);
    } else if (key === "core id") cores.add(`${physical}/${value}`);
    else if (key === "vendor_id" && !vendor) vendor = value;
    else if (key === "model name" && !model) model = value.replace(/ +/g, " ").replace("- ", "-");
    else if (key === "cache size" && !cache) {
      const m = /^(\d+) KB$/.exec(value);
      if (m) cache = Number(m[1]);
    }
  }
  return present({ vendor, model, cache, cpus: cpus.size, cores: cores.size, threads });
}

/** Network devices of /sys/class/net that are not virtual, as sysinfo lists them. */
async function networkDevices(root: string): Promise<SystemFacts["network"]> {
  const dir = join(root, "sys/class/net");
  const out: SystemFacts["network"] = [];
  for (const name of (await readdir(dir).catch(() => [] as string[])).sort()) {
    const link = await readlink(join(dir, name)).catch(() => undefined);
    if (link === undefined || link.includes("/devices/virtual/")) continue;
    const driver = await readlink(join(dir, name, "device/driver")).catch(() => "");
    out.push({
      name,
      ...present({
        driver: driver ? basename(driver) : "",
        macaddress: await slurp(join(dir, name, "address")),
      }),
    });
  }
  return out;
}

/** Read the system facts under `root` (tests pass a temporary tree). Never writes. */
export async function readSystemFacts(root: string): Promise<SystemFacts> {
  const dmi = (f: string) => slurp(join(root, "sys/class/dmi/id", f));
  const uuid = (await dmi("product_uuid")).toLowerCase();
  return {
    node: present({
      hostname: await slurp(join(root, "proc/sys/kernel/hostname")),
      machineid: await readMachineId(root),
    }),
    product: present({
      name: (await dmi("product_name")) || (await slurp(join(root, "proc/device-tree/model"))),
      vendor: await dmi("sys_vendor"),
      version: await dmi("product_version"),
      serial: (await dmi("product_serial")) || (await slurp(join(root, "proc/device-tree/serial-number"))),
      // sysinfo keeps it only if it parses as a UUID.
      uuid: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(uuid) ? uuid : "",
      sku: await dmi("product_sku"),
    }),
    cpu: cpuFromCpuinfo(await readFile(join(root, "proc/cpuinfo"), "utf8").catch(() => "")),
    network: await networkDevices(root),
  };
}
