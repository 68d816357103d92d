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

/**
 * Upstream's user name rule, as its schema states it (`[a-z_][a-z0-9_]{0,30}`, unanchored as
 * JSON Schema patterns are): at least one lowercase letter or "_". It refuses "007" and "".
 */
export const USER_NAME_PATTERN = "[a-z_][a-z0-9_]{0,30}";

const user: Schema = {
  type: "object",
  properties: {
    name: {
      type: "string",
      pattern: USER_NAME_PATTERN,
      "x-expected":
        'a login name with a lowercase letter or "_" in it (upstream\'s pattern [a-z_][a-z0-9_]{0,30})',
      description: "login name",
    },
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

const partition: Schema = { type: "object", properties: { size, fs, label: str(), name: str() } };

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
    hostname: str("hostname; a Go template with .MachineID and .Random (e.g. node-{{ trunc 4 .MachineID }})"),
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
    packages: {
      type: "object",
      // yip pkg/plugins/packages.go runs them in this order: refresh, upgrade, install, remove.
      properties: {
        refresh: bool(),
        upgrade: bool("upgrade every package"),
        install: strList(),
        remove: strList(),
      },
    },
    git: { type: "object", "x-open": true },
    systemd_firstboot: { type: "object", additionalProperties: scalar },
    unpack_images: { type: "array", items: { type: "object", "x-open": true } },
    package_pins: {
      type: "object",
      additionalProperties: {
        type: ["string", "number", "boolean", "null"],
        "x-expected": "a version (package_pins maps a package name to its version)",
      },
      description: "package name → version to pin before installs (yip: map[string]string)",
    },
    if_files: {
      type: "object",
      description: "run the step only if files exist: any (one of), all, none (yip's IfFiles)",
      properties: {
        any: strList("run if at least one of these files exists"),
        all: strList("run if all of these files exist"),
        none: strList("run if none of these files exists"),
      },
    },
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
  // kairos-docs Architecture/cloud-init.md lists these, and the provider's bootstrap stages per role.
  const uki = ["install", "reset", "upgrade"].flatMap((a) => [
    `kairos-uki-${a}.pre`,
    `kairos-uki-${a}.after`,
  ]);
  const provider = ["master", "worker"].flatMap((r) => [
    `provider-kairos.bootstrap.before.${r}`,
    `provider-kairos.bootstrap.after.${r}`,
  ]);
  const all = [
    ...boot,
    ...hooks,
    "kairos-install.pre",
    "kairos-install.after",
    "kairos-uki-install",
    ...uki,
    ...provider,
  ];
  return all.flatMap((s) => [s, `${s}.before`, `${s}.after`]);
})();

/** The stages `kairos-agent run-stage` runs from boot units; these also read /system/oem. */
export const SYSTEM_STAGES = ["rootfs", "initramfs", "boot", "fs", "network", "reconcile"] as const;

const grubOptions: Schema = {
  type: "object",
  properties: {
    extra_cmdline: str("appended to every entry's kernel command line"),
    extra_active_cmdline: str("appended to the active entry only"),
    extra_passive_cmdline: str("appended to the passive (fallback) entry only"),
    extra_recovery_cmdline: str(),
    default_menu_entry: str("title of the default boot menu entry"),
    default_fallback: str('fallback order, e.g. "1 2"'),
    next_entry: str("entry booted once, at the next boot"),
    saved_entry: str("default boot entry"),
  },
  // Upstream's map[string]string: every key becomes a GRUB environment variable (e.g. timeout).
  additionalProperties: str(),
};

/** A bundle (a container image with files to apply), as upstream's BundleSchema. */
const bundle: Schema = {
  type: "object",
  properties: {
    repository: str(),
    rootfs_path: str(),
    db_path: str(),
    local_file: bool(),
    targets: strList(),
  },
};

/** Keys shared by install, upgrade and reset in upstream's specs. */
const actionCommon = {
  reboot: bool("reboot when done (default false)"),
  poweroff: bool("power off when done (default false)"),
  "grub-entry-name": str("title of the boot menu entries"),
  "extra-dirs-rootfs": strList("directories created in the image"),
  "allow-insecure-registries": bool("pull the source over plain HTTP"),
  tty: str("console of the action's log"),
};

const install: Schema = {
  type: "object",
  properties: {
    device: {
      type: "string",
      pattern: "^(auto|/dev/.+|script://.+)$",
      "x-expected":
        'a device: "auto", /dev/sdX, /dev/vdX, /dev/nvmeXnY, /dev/disk/by-{id,label,path,uuid,diskseq}/… or script:///path (its output names the device)',
    },
    auto: bool("install without waiting for pairing/interaction (default false)"),
    ...actionCommon,
    force: bool(),
    "no-format": bool(),
    no_format: bool("spelling of no-format in upstream's schema"),
    partitions: {
      type: "object",
      properties: { oem: partition, recovery: partition, state: partition, persistent: partition },
    },
    "extra-partitions": {
      type: "array",
      items: { type: "object", properties: { name: str(), size, fs, label: str() } },
    },
    grub_options: grubOptions,
    bind_mounts: strList("paths kept on COS_PERSISTENT and bind-mounted"),
    ephemeral_mounts: strList("paths backed by tmpfs"),
    env: {
      type: "array",
      items: { anyOf: [{ type: "string" }, { type: "object", "x-open": true }] },
      "x-expected": 'a list of "KEY=value" strings or maps',
    },
    image: str(),
    source: str("image to install instead of the running one (oci:…, docker:…, dir:…)"),
    system: systemImage,
    passive: systemImage,
    "recovery-system": systemImage,
    bundles: { type: "array", items: bundle },
    skip_copy_kairos_agent: bool(),
    skip_copy_kcrypt_plugin: bool(),
    encrypted_partitions: strList(),
    ssh_hardening: bool("disable SSH password login (needs an SSH key for some user)"),
    nousers: bool("install without creating the default users"),
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
    ...actionCommon,
    system: systemImage,
    passive: systemImage,
    source: str(),
    "excluded-paths": strList(),
    entry: str(),
  },
};

const upgrade: Schema = {
  type: "object",
  properties: {
    recovery: bool("upgrade the recovery image instead of the active one"),
    ...actionCommon,
    system: systemImage,
    passive: systemImage,
    "recovery-system": systemImage,
    source: str(),
    "excluded-paths": strList(),
    entry: str(),
  },
};

/** p2p as upstream's P2PSchema (the token/auto rule is a separate check, see validate.ts). */
const p2p: Schema = {
  type: "object",
  properties: {
    role: { type: "string", enum: ["master", "worker", "none", ""] },
    network_id: str(),
    network_token: str("shared secret of the p2p network"),
    dns: bool(),
    disable_dht: bool(),
    vpn: {
      type: "object",
      properties: { create: bool(), vpn: bool(), use: bool(), env: { type: "object", "x-open": true } },
    },
    auto: {
      type: "object",
      properties: {
        enable: bool(),
        ha: {
          type: "object",
          properties: {
            enable: bool(),
            master_nodes: { type: "integer", minimum: 1, "x-expected": "a whole number ≥ 1" },
            external_db: str(),
          },
        },
      },
    },
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
    users: {
      type: "array",
      minItems: 1,
      items: { ...user, required: ["name"] },
      "x-expected-minItems": "at least one user (leave users out for none)",
    },
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
    config_url: str("http(s) URL of a config to merge (a template or other value is kept, not fetched)"),
    strict: bool("make a failing stage step fatal (default false)"),
    debug: bool(),
    "cloud-init-paths": strList("extra directories read for stages"),
    k3s: { type: "object", "x-open": true },
    "k3s-agent": { type: "object", "x-open": true },
    k0s: { type: "object", "x-open": true },
    "k0s-worker": { type: "object", "x-open": true },
    p2p,
    kubevip: { type: "object", "x-open": true },
    bundles: { type: "array", items: { type: "object", "x-open": true } },
    fail_on_bundles_errors: bool(),
    options: {
      anyOf: [
        { type: "object", "x-open": true },
        { type: "array", items: { "x-open": true } },
      ],
      "x-expected": "a map (or a list) of options",
    },
    "eject-cd": bool(),
    env: strList("KEY=value pairs for the agent's actions"),
    grub_options: grubOptions,
    fullcloudconfig: str(),
    cosign: bool("verify images with cosign"),
    verify: bool(),
    "cosign-key": str("public key (path or URL) for cosign"),
    arch: str("target architecture (amd64, arm64)"),
    platform: { type: "object", "x-open": true },
    "squash-compression": strList("mksquashfs compression options"),
    "squash-no-compression": bool(),
    "uki-max-entries": { type: "integer", minimum: 0 },
    "bind-pcrs": strList("TPM PCRs kcrypt binds to"),
    "bind-public-pcrs": strList("public PCR values for kcrypt"),
    kcrypt: { type: "object", "x-open": true },
    phonehome: { type: "object", "x-open": true },
    logs: { type: "object", properties: { journal: strList(), files: strList() } },
    vpn: { type: "object", "x-open": true },
    growpart: { type: "object", properties: { devices: strList() } },
  },
};
