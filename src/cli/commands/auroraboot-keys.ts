import { parse as parseYaml } from "yaml";
import { KairosError } from "../../sys/index.js";

/**
 * AuroraBoot's settings (`--set key=value` and its config file), one row per key, with its
 * default and how kairos-ts differs. `kairos auroraboot --help` and docs/media.md are generated
 * from / kept in line with this table; other commands (netboot) add their rows here.
 */
export interface AuroraBootKey {
  key: string;
  type: "string" | "bool";
  /** AuroraBoot's default, as text; undefined = unset. */
  default?: string;
  help: string;
  /** Where kairos-ts differs from AuroraBoot, if it does. */
  differs?: string;
  /** A deprecated spelling: the value is moved to this key (as AuroraBoot's HandleDeprecations). */
  aliasOf?: string;
}

export const AURORABOOT_KEYS: AuroraBootKey[] = [
  {
    key: "container_image",
    type: "string",
    help: "the image: docker://REF, docker:REF, oci://REF, oci:REF or a bare REF (registry); oci:DIR (a local layout when DIR is a directory), dir:, ocifile: (local)",
    differs: "oci:X is a local OCI layout when X is a directory or looks like a path (skopeo's meaning)",
  },
  { key: "state_dir", type: "string", default: "/tmp/auroraboot", help: "everything is written here" },
  {
    key: "disable_http_server",
    type: "bool",
    default: "false",
    help: "do not serve state_dir over HTTP after the build",
  },
  {
    key: "disable_netboot",
    type: "bool",
    default: "false",
    help: "do not write netboot files to state_dir/netboot",
  },
  {
    key: "cloud_config",
    type: "string",
    help: "the cloud-config: a file, an http(s) URL, - for stdin, or the text itself (starts with #cloud-config); [[ .key ]] takes --set values",
  },
  { key: "iso.name", type: "string", default: "kairos", help: "ISO base name" },
  { key: "iso.overlay_iso", type: "string", help: "directory copied into the ISO's root" },
  { key: "iso.overlay_rootfs", type: "string", help: "directory merged into the image's root filesystem" },
  { key: "listen_addr", type: "string", default: ":8080", help: "HTTP listen address (:PORT or HOST:PORT)" },
  {
    key: "netboot.cmdline",
    type: "string",
    help: "the netboot kernel command line (replaces the default, as upstream)",
  },
  {
    key: "netboot_http_port",
    type: "string",
    default: "8090",
    help: "port of the PXE server's HTTP side (kernel, initrd, squashfs, config, iPXE script)",
  },
  {
    key: "netboot_listen_addr",
    type: "string",
    help: "address the PXE server binds (default: all; ProxyDHCP answers on 67 and 4011)",
  },
  ...["disk.efi", "disk.bios", "disk.raw", "disk.gce", "disk.vhd"].map(
    (key): AuroraBootKey => ({
      key,
      type: "bool",
      default: "false",
      help: `build ${key === "disk.raw" ? "a raw hybrid (BIOS+UEFI)" : key.slice(5).toUpperCase()} disk image instead of the ISO (docs/media.md, Disk images)`,
    }),
  ),
  { key: "disk.size", type: "string", help: "disk image size in MB (default: what the layout needs)" },
  { key: "disk.state_size", type: "string", help: "COS_STATE size in MB (default: three system slots)" },
  {
    key: "disk.recovery_image_size",
    type: "string",
    help: "COS_RECOVERY size in MB (default: three system slots, room for a recovery upgrade)",
  },
  {
    key: "disable_iso",
    type: "bool",
    default: "false",
    help: "do not build the ISO (netboot files are still built unless disabled)",
  },
  {
    key: "no_default_cloud_config",
    type: "bool",
    default: "false",
    help: "do not add a default cloud-config when none is given",
    differs: "kairos-ts never adds one, so this changes nothing",
  },
  {
    key: "arch",
    type: "string",
    default: "amd64",
    help: "architecture of the image to pull",
    differs: "only amd64 (x86_64) media are built",
  },
  {
    key: "allow-insecure-registries",
    type: "bool",
    default: "false",
    help: "pull over plain HTTP or from untrusted TLS",
  },
  {
    key: "insecure",
    type: "bool",
    help: "deprecated spelling of allow-insecure-registries",
    aliasOf: "allow-insecure-registries",
  },
  {
    key: "iso.data",
    type: "string",
    help: "deprecated spelling of iso.overlay_iso",
    aliasOf: "iso.overlay_iso",
  },
  {
    key: "iso.override_name",
    type: "string",
    help: "ISO base name, used as given (wins over iso.name and iso.include_date)",
  },
  {
    key: "iso.include_date",
    type: "bool",
    default: "false",
    help: "append .YYYYMMDD (local date) to the ISO name, as enki",
  },
  {
    key: "iso.extend-live-cmdline",
    type: "string",
    help: "kernel arguments added to the live ISO's entries (not the installed system)",
  },
  {
    key: "iso.live_console",
    type: "string",
    help: "console of the live ISO (e.g. ttyS0,115200), added as console=VALUE",
  },
  ...[
    "artifact_version",
    "release_version",
    "flavor",
    "flavor_release",
    "repository",
    "variant",
    "model",
    "platform",
  ].map(
    (key): AuroraBootKey => ({
      key,
      type: "string",
      help: "release artifact to download instead of container_image",
      differs: "release downloads from GitHub are not done; set container_image",
    }),
  ),
];

/** AuroraBoot keys kairos-ts does not have, and what to use instead. */
const UNSUPPORTED: Record<string, string> = {
  "system.": "kairos auroraboot does not start a VM; boot the ISO with qemu yourself",
  "iso.extensions": "system extensions are not supported yet",
  "iso.extensions_catalog": "system extensions are not supported yet",
};

/** Prefixes that belong to AuroraBoot's own blocks: an unknown key under them is a typo. */
const OWN_PREFIXES = ["iso.", "netboot.", "disk.", "system."];

export interface AuroraBootSettings {
  /** Every known key with its value (defaults filled in), after deprecated spellings moved. */
  values: Map<string, string>;
  /** Keys set by the user that AuroraBoot does not define: values for `[[ .key ]]`. */
  free: Map<string, string>;
  /** Remarks for the user (deprecated spellings, keys that change nothing here). */
  notes: string[];
}

export function keyRow(key: string): AuroraBootKey | undefined {
  return AURORABOOT_KEYS.find((k) => k.key === key);
}

function parseBool(key: string, value: string): string {
  const v = value.trim().toLowerCase();
  if (["true", "1", "yes", "on"].includes(v)) return "true";
  if (["false", "0", "no", "off", ""].includes(v)) return "false";
  throw new KairosError(`--set ${key}=${value}: not a boolean`, `use ${key}=true or ${key}=false`);
}

/** Split `--set key=value` arguments; a value may contain "=". */
export function splitSets(sets: readonly string[]): [string, string][] {
  return sets.map((s) => {
    const eq = s.indexOf("=");
    if (eq <= 0) {
      throw new KairosError(
        `--set '${s}' is not key=value`,
        "for example --set container_image=docker://my-image",
      );
    }
    return [s.slice(0, eq).trim(), s.slice(eq + 1)];
  });
}

/** Flatten AuroraBoot's YAML config file (`iso: {name: x}`) into dotted keys (`iso.name`). */
export function flattenConfigFile(text: string, file: string): [string, string][] {
  let doc: unknown;
  try {
    doc = parseYaml(text, { maxAliasCount: 100 });
  } catch (err) {
    throw new KairosError(
      `${file}: not YAML: ${(err as Error).message.split("\n")[0]}`,
      "fix the AuroraBoot config file",
    );
  }
  if (doc === null || doc === undefined) return [];
  if (typeof doc !== "object" || Array.isArray(doc)) {
    throw new KairosError(
      `${file}: expected a map of AuroraBoot keys`,
      "for example container_image: quay.io/kairos/ubuntu:24.04",
    );
  }
  const out: [string, string][] = [];
  const walk = (v: unknown, prefix: string, depth: number) => {
    if (depth > 4) throw new KairosError(`${file}: ${prefix} is nested too deeply for an AuroraBoot key`);
    if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      for (const [k, x] of Object.entries(v)) walk(x, prefix ? `${prefix}.${k}` : k, depth + 1);
    } else if (Array.isArray(v)) {
      throw new KairosError(`${file}: ${prefix} is a list; AuroraBoot keys take one value`);
    } else out.push([prefix, v === null || v === undefined ? "" : String(v)]);
  };
  walk(doc, "", 0);
  return out;
}

/**
 * Check and fill in the settings: known keys are typed and defaulted, deprecated spellings
 * moved, unsupported AuroraBoot keys refused with what to do, typos under AuroraBoot's own
 * blocks (`iso.nmae`) refused with the known keys, and any other key kept as a free value.
 */
export function resolveAuroraBootSettings(pairs: readonly [string, string][]): AuroraBootSettings {
  const set = new Map<string, string>();
  const free = new Map<string, string>();
  const notes: string[] = [];
  for (const [key, value] of pairs) {
    const row = keyRow(key);
    if (row) {
      set.set(key, row.type === "bool" ? parseBool(key, value) : value);
      continue;
    }
    const unsupported = Object.entries(UNSUPPORTED).find(
      ([k]) => key === k || (k.endsWith(".") && key.startsWith(k)),
    );
    if (unsupported)
      throw new KairosError(`AuroraBoot key '${key}' is not supported by kairos-ts`, unsupported[1]);
    if (OWN_PREFIXES.some((p) => key.startsWith(p)) || !/^[A-Za-z_][A-Za-z0-9_.-]*$/.test(key)) {
      throw new KairosError(
        `unknown AuroraBoot key '${key}'`,
        `known keys: ${AURORABOOT_KEYS.map((k) => k.key).join(", ")}`,
      );
    }
    free.set(key, value);
  }
  for (const row of AURORABOOT_KEYS) {
    if (!row.aliasOf || !set.has(row.key)) continue;
    const v = set.get(row.key)!;
    set.delete(row.key);
    if (set.has(row.aliasOf))
      notes.push(`'${row.key}' is deprecated and ignored: '${row.aliasOf}' is set too`);
    else {
      notes.push(`'${row.key}' is deprecated; use '${row.aliasOf}'`);
      set.set(row.aliasOf, v);
    }
  }
  for (const [key, value] of set) {
    if (rowOf(key).type === "string" && value.trim() === "" && key !== "netboot.cmdline") {
      throw new KairosError(`--set ${key}= is empty`, `give ${key} a value or leave it out`);
    }
  }
  const values = new Map<string, string>();
  for (const r of AURORABOOT_KEYS) {
    const v = set.get(r.key) ?? r.default;
    if (v !== undefined && !r.aliasOf) values.set(r.key, v);
  }
  const arch = values.get("arch")!.toLowerCase();
  if (!["amd64", "x86_64"].includes(arch)) {
    throw new KairosError(
      `arch=${arch}: kairos-ts builds amd64 media only`,
      "leave arch out or set arch=amd64",
    );
  }
  if (set.get("no_default_cloud_config") === "true")
    notes.push("no_default_cloud_config: kairos-ts never adds a default cloud-config");
  return { values, free, notes };
}

function rowOf(key: string): AuroraBootKey {
  return keyRow(key)!;
}

/** `[[ .key ]]` data: free keys (and known ones), a dotted key as nested maps. */
export function templateValues(s: AuroraBootSettings): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const own = (o: Record<string, unknown>, k: string, v: unknown) =>
    Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
  const put = (key: string, value: string) => {
    const parts = key.split(".");
    let cur = out;
    for (const p of parts.slice(0, -1)) {
      const next = Object.hasOwn(cur, p) ? cur[p] : undefined;
      if (next === null || typeof next !== "object") own(cur, p, {});
      cur = cur[p] as Record<string, unknown>;
    }
    own(cur, parts[parts.length - 1]!, value);
  };
  for (const [k, v] of s.values) put(k, v);
  for (const [k, v] of s.free) put(k, v);
  return out;
}

/** The release-artifact keys, when given instead of container_image. */
export const RELEASE_KEYS = [
  "artifact_version",
  "release_version",
  "flavor",
  "flavor_release",
  "repository",
  "variant",
  "model",
  "platform",
];

/** Help text listing every key with its default. */
export function keysHelp(): string {
  const lines = AURORABOOT_KEYS.map(
    (k) =>
      `  ${k.key}${k.default !== undefined ? ` (default ${k.default})` : ""}: ${k.help}${k.differs ? ` [kairos-ts: ${k.differs}]` : ""}`,
  );
  return `AuroraBoot keys (--set KEY=VALUE or a YAML config file):\n${lines.join("\n")}\n  any other KEY: a value for [[ .KEY ]] in the cloud-config\n`;
}
