/**
 * The JSON Schema of a Kairos cloud-config (draft-07). `x-expected` is our own annotation:
 * the words used in an error message when a value does not fit ("expected an octal mode…").
 * Objects list their known keys in `properties`; a key not listed is a warning, not an error
 * (upstream Kairos ignores unknown keys too). Objects marked `x-open` take any keys silently.
 */

type Schema = Record<string, unknown>;

const str = (description?: string): Schema => ({ type: "string", ...(description ? { description } : {}) });
const bool = (description?: string): Schema => ({ type: "boolean", ...(description ? { description } : {}) });
const strList = (description?: string): Schema => ({
  type: "array",
  items: { type: "string" },
  ...(description ? { description } : {}),
});
/** A string, or a list of strings (cloud-init accepts both for `groups`). */
const strOrList: Schema = {
  anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }],
  "x-expected": "a string or a list of strings",
};
const scalar: Schema = {
  type: ["string", "number", "boolean"],
  "x-expected": "a string, number or boolean",
};
const size: Schema = {
  type: "integer",
  minimum: 0,
  "x-expected": "a size in MiB (a whole number, 0 = rest of the disk)",
};
const fs: Schema = {
  type: "string",
  enum: ["ext2", "ext3", "ext4", "xfs", "btrfs", "vfat", "fat", "squashfs"],
};

/** File modes: YAML 1.1 octal numbers (0644 → 420) or strings such as "0644". */
export const MODE_SCHEMA: Schema = {
  anyOf: [
    { type: "integer", minimum: 0, maximum: 0o7777 },
    { type: "string", pattern: "^(0o?)?[0-7]{3,4}$" },
  ],
  "x-expected": "an octal mode (e.g. 0644)",
};

const idOrName: Schema = {
  anyOf: [
    { type: "integer", minimum: 0 },
    { type: "string", minLength: 1 },
  ],
  "x-expected": "a numeric id or a name",
};

const user: Schema = {
  type: "object",
  properties: {
    name: str("login name"),
    passwd: str("password: plain text (hashed on write, SHA-512 crypt) or a crypt hash ($6$…, $5$…, $y$…)"),
    groups: strOrList,
    ssh_authorized_keys: strList("public keys; 'github:USER' / 'gitlab:USER' fetch that user's keys"),
    shell: str("login shell (default /bin/sh)"),
    homedir: str("home directory (default /home/NAME)"),
    lock_passwd: bool("lock password login (the hash is kept, prefixed with !)"),
    gecos: str(),
    primary_group: str(),
    no_create_home: bool(),
    no_user_group: bool(),
    system: bool(),
    no_log_init: bool(),
    uid: idOrName,
  },
};

const file: Schema = {
  type: "object",
  required: ["path"],
  properties: {
    path: { type: "string", minLength: 1, "x-expected": "a file path" },
    content: str(),
    permissions: MODE_SCHEMA,
    owner: idOrName,
    group: idOrName,
    owner_string: str("user or user:group, resolved in the target root"),
    encoding: {
      type: "string",
      enum: ["", "b64", "base64", "gz", "gzip", "gz+base64", "gzip+base64", "gz+b64", "gzip+b64"],
    },
    append: bool("cloud-init write_files: append instead of replace"),
    defer: bool(),
  },
};

const directory: Schema = {
  type: "object",
  required: ["path"],
  properties: {
    path: { type: "string", minLength: 1, "x-expected": "a directory path" },
    permissions: MODE_SCHEMA,
    owner: idOrName,
    group: idOrName,
  },
};

const systemImage: Schema = {
  type: "object",
  properties: {
    size: size,
    fs: fs,
    uri: str("image source, e.g. docker:registry/image:tag, oci:…, dir:/path"),
    source: str("alias of uri"),
    label: str(),
  },
};

const partition: Schema = { type: "object", properties: { size, fs, label: str() } };

/** One yip step. */
export const STEP_SCHEMA: Schema = {
  type: "object",
  properties: {
    name: str("shown in logs"),
    if: str("shell expression run with sh -c; the step runs only when it exits 0"),
    commands: strList("each run with sh -c"),
    files: { type: "array", items: file },
    downloads: {
      type: "array",
      items: {
        type: "object",
        properties: {
          path: str(),
          url: str(),
          permissions: MODE_SCHEMA,
          owner: idOrName,
          group: idOrName,
          timeout: { type: "integer" },
          owner_string: str(),
        },
      },
    },
    directories: { type: "array", items: directory },
    users: { type: "object", additionalProperties: user },
    authorized_keys: { type: "object", additionalProperties: { type: "array", items: { type: "string" } } },
    hostname: str("hostname; {{ .MachineID }} and {{ trunc N .MachineID }} are expanded"),
    dns: {
      type: "object",
      properties: { nameservers: strList(), search: strList(), options: strList(), path: str() },
    },
    sysctl: { type: "object", additionalProperties: scalar },
    systemctl: {
      type: "object",
      properties: {
        enable: strList(),
        disable: strList(),
        start: strList(),
        mask: strList(),
        overrides: {
          type: "array",
          items: { type: "object", properties: { service: str(), content: str(), name: str() } },
        },
      },
    },
    environment: { type: "object", additionalProperties: scalar },
    environment_file: str("default /etc/environment"),
    modules: strList(),
    timesyncd: { type: "object", additionalProperties: scalar },
    only_os: str("regular expression matched against ID in /etc/os-release"),
    only_os_version: str("regular expression matched against VERSION_ID"),
    only_arch: str("regular expression matched against the architecture (amd64, arm64)"),
    only_service_manager: str("systemd or openrc"),
    node: str(),
    after: { type: "array", items: { type: "object", properties: { name: str() } } },
    ensure_entities: { type: "array", items: { type: "object", properties: { path: str(), entity: str() } } },
    delete_entities: { type: "array", items: { type: "object", properties: { path: str(), entity: str() } } },
    datasource: { type: "object", properties: { providers: strList(), path: str() } },
    layout: { type: "object", "x-open": true },
    packages: { type: "object", properties: { install: strList(), remove: strList(), refresh: bool() } },
    git: { type: "object", "x-open": true },
    systemd_firstboot: { type: "object", additionalProperties: scalar },
    unpack_images: { type: "array", items: { type: "object", "x-open": true } },
  },
};

const steps: Schema = {
  anyOf: [{ type: "array", items: STEP_SCHEMA }, { type: "null" }],
  "x-expected": "a list of steps",
};

/** Stage names Kairos emits. Other names are accepted with a warning (yip allows any). */
export const KNOWN_STAGES: readonly string[] = (() => {
  const boot = ["rootfs", "initramfs", "boot", "fs", "network", "reconcile"];
  const hooks = ["install", "upgrade", "reset"].flatMap((a) => [
    `before-${a}`,
    `after-${a}`,
    `after-${a}-chroot`,
    `before-${a}-chroot`,
  ]);
  const all = [...boot, ...hooks, "kairos-install.pre", "kairos-install.after", "kairos-uki-install"];
  return all.flatMap((s) => [s, `${s}.before`, `${s}.after`]);
})();

/** The stages `kairos-agent run-stage` runs from boot units; these also read /system/oem. */
export const SYSTEM_STAGES = ["rootfs", "initramfs", "boot", "fs", "network", "reconcile"] as const;

const install: Schema = {
  type: "object",
  properties: {
    device: {
      type: "string",
      pattern: "^(auto|/dev/\\S+)$",
      "x-expected":
        'a device: "auto", /dev/sdX, /dev/vdX, /dev/nvmeXnY or /dev/disk/by-{id,label,path,uuid,diskseq}/…',
    },
    auto: bool("install without waiting for pairing/interaction (default false)"),
    reboot: bool("reboot when done (default false)"),
    poweroff: bool("power off when done (default false)"),
    force: bool(),
    "no-format": bool(),
    "grub-entry-name": str(),
    partitions: {
      type: "object",
      properties: { oem: partition, recovery: partition, state: partition, persistent: partition },
    },
    "extra-partitions": {
      type: "array",
      items: { type: "object", properties: { name: str(), size, fs, label: str() } },
    },
    grub_options: {
      type: "object",
      properties: {
        extra_cmdline: str("appended to every entry's kernel command line"),
        extra_active_cmdline: str("appended to the active entry only"),
        extra_passive_cmdline: str("appended to the passive (fallback) entry only"),
        extra_recovery_cmdline: str(),
        default_menu_entry: str("title of the default boot menu entry"),
      },
    },
    bind_mounts: strList("paths kept on COS_PERSISTENT and bind-mounted"),
    ephemeral_mounts: strList("paths backed by tmpfs"),
    env: strList(),
    image: str(),
    system: systemImage,
    passive: systemImage,
    "recovery-system": systemImage,
    skip_copy_kairos_agent: bool(),
    encrypted_partitions: strList(),
    "cloud-init": str(),
    firmware: str(),
    "part-table": str(),
  },
};

const reset: Schema = {
  type: "object",
  properties: {
    "reset-persistent": bool(),
    "reset-oem": bool(),
    reboot: bool(),
    poweroff: bool(),
    system: systemImage,
    source: str(),
  },
};

const upgrade: Schema = {
  type: "object",
  properties: {
    recovery: bool("upgrade the recovery image instead of the active one"),
    reboot: bool(),
    poweroff: bool(),
    system: systemImage,
    "recovery-system": systemImage,
    source: str(),
  },
};

const writeFile: Schema = {
  ...file,
  properties: {
    ...(file.properties as Schema),
    owner: { type: "string", "x-expected": "user or user:group" },
    permissions: MODE_SCHEMA,
  },
};

/** The whole cloud-config. */
export const CLOUD_CONFIG_SCHEMA: Schema = {
  $schema: "http://json-schema.org/draft-07/schema#",
  $id: "https://kairos-ts.dev/schema/cloud-config.json",
  title: "Kairos cloud-config",
  type: "object",
  properties: {
    name: str("a name for this config (logs only)"),
    users: { type: "array", items: { ...user, required: ["name"] } },
    install,
    reset,
    upgrade,
    stages: {
      type: "object",
      additionalProperties: steps,
      "x-known-keys": KNOWN_STAGES,
    },
    runcmd: {
      type: "array",
      items: {
        anyOf: [{ type: "string" }, { type: "array", items: { type: "string" } }],
        "x-expected": "a command string (or a list of argv strings)",
      },
    },
    write_files: { type: "array", items: writeFile },
    hostname: str(),
    ssh_authorized_keys: strList(),
    config_url: { type: "string", pattern: "^https?://", "x-expected": "an http:// or https:// URL" },
    strict: bool("make a failing stage step fatal (default false)"),
    debug: bool(),
    "cloud-init-paths": strList("extra directories read for stages"),
    k3s: { type: "object", "x-open": true },
    "k3s-agent": { type: "object", "x-open": true },
    k0s: { type: "object", "x-open": true },
    "k0s-worker": { type: "object", "x-open": true },
    p2p: { type: "object", "x-open": true },
    kubevip: { type: "object", "x-open": true },
    bundles: { type: "array", items: { type: "object", "x-open": true } },
    fail_on_bundles_errors: bool(),
    options: { type: "object", "x-open": true },
    "eject-cd": bool(),
  },
};
