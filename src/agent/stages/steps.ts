import { accessSync, existsSync, constants as fsc, writeFileSync } from "node:fs";
import { release } from "node:os";
import { gunzipSync } from "node:zlib";
import { parse as parseYaml } from "yaml";
import { resolveInRoot } from "../../config/index.js";
import { run } from "../../sys/index.js";
import {
  type AccountsDb,
  applyUser,
  deleteEntity,
  type Entity,
  ensureEntity,
  loadAccounts,
  lookupGroup,
  lookupUser,
  saveAccounts,
  type UserSpec,
} from "./accounts.js";
import { mkdirInRoot, octal, parseMode, readInRoot, writeFileInRoot } from "./fsops.js";
import { disableUnit, enableUnit, maskUnit, unitName } from "./systemd.js";
import { randomString, renderTemplate, type TemplateData } from "./template.js";

/** One step of a stage, as written in the config. */
export type Step = Record<string, unknown>;

/** What a step runner needs to know about where it runs. */
export interface StepEnv {
  /** The target root (real path). "/" means the running system. */
  root: string;
  /** Line logger. */
  log: (line: string) => void;
  /** systemd is PID 1 of this root (root is "/" and /run/systemd/system exists). */
  systemdRunning: boolean;
  /** How `commands` and `if` run: in a chroot of root, or on the host with cwd=root. */
  shell: "host" | "chroot";
  /** Base URLs for `github:USER` / `gitlab:USER` keys (default https://github.com, https://gitlab.com). */
  keyServers?: { github?: string; gitlab?: string };
  signal?: AbortSignal;
}

/** Run a shell command the way the stage runner runs `commands` and `if`. */
export async function shell(env: StepEnv, command: string): Promise<{ stdout: string; stderr: string }> {
  const vars = { ...process.env, KAIROS_ROOT: env.shell === "chroot" ? "/" : env.root };
  if (env.shell === "chroot") {
    return run("chroot", [env.root, "/bin/sh", "-c", command], { cwd: "/", env: vars, signal: env.signal });
  }
  return run("sh", ["-c", command], { cwd: env.root, env: vars, signal: env.signal });
}

/** chroot only when root is not "/" and holds an executable /bin/sh; otherwise the host's sh with cwd=root. */
export function chooseShell(root: string): "host" | "chroot" {
  if (root === "/") return "host";
  try {
    accessSync(resolveInRoot(root, "/bin/sh"), fsc.X_OK);
    return "chroot";
  } catch {
    return "host";
  }
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.map(String) : [];
}

function decode(content: string, encoding: string | undefined): Buffer {
  switch (encoding ?? "") {
    case "":
      return Buffer.from(content, "utf8");
    case "b64":
    case "base64":
      return Buffer.from(content, "base64");
    case "gz":
    case "gzip":
      return gunzipSync(Buffer.from(content, "latin1"));
    case "gz+base64":
    case "gzip+base64":
    case "gz+b64":
    case "gzip+b64":
      return gunzipSync(Buffer.from(content, "base64"));
    default:
      throw new Error(`unknown encoding ${JSON.stringify(encoding)}`);
  }
}

/** uid/gid for a file: numeric owner/group, or names (owner_string "user:group") looked up in root. */
function ownership(db: AccountsDb, f: Record<string, unknown>): { uid?: number; gid?: number } {
  let owner = f.owner as string | number | undefined;
  let group = f.group as string | number | undefined;
  const os =
    (f.owner_string as string | undefined) ??
    (typeof owner === "string" && owner.includes(":") ? owner : undefined);
  if (os) {
    const [u, g] = os.split(":");
    owner = u;
    if (g) group = g;
  }
  let uid: number | undefined;
  let gid: number | undefined;
  if (owner !== undefined && owner !== "") {
    const u = lookupUser(db, owner);
    if (!u) throw new Error(`owner ${JSON.stringify(owner)} is not a user in ${"/etc/passwd"}`);
    uid = u.uid;
    if (group === undefined) gid = u.gid;
  }
  if (group !== undefined && group !== "") {
    gid = lookupGroup(db, group);
    if (gid === undefined) throw new Error(`group ${JSON.stringify(group)} is not in /etc/group`);
  }
  return { uid, gid };
}

function describeOwner(uid: number | undefined, gid: number | undefined): string {
  return `${uid ?? 0}:${gid ?? uid ?? 0}`;
}

/**
 * yip's template data for commands and file contents: `.Values`, the node's facts in the
 * layout of the sysinfo library yip uses (node, os, kernel), read from the root only when a
 * template asks for them.
 */
export function nodeTemplateData(root: string): TemplateData {
  return Object.defineProperty({}, "Values", {
    enumerable: true,
    get: () => {
      const os: Record<string, string> = {};
      const text = readInRoot(root, "/etc/os-release") ?? readInRoot(root, "/usr/lib/os-release") ?? "";
      for (const l of text.split("\n")) {
        const eq = l.indexOf("=");
        if (eq > 0)
          os[l.slice(0, eq).trim()] = l
            .slice(eq + 1)
            .trim()
            .replace(/^["']|["']$/g, "");
      }
      const goArch =
        ({ x64: "amd64", arm64: "arm64", arm: "arm" } as Record<string, string>)[process.arch] ??
        process.arch;
      let machineid = "";
      try {
        machineid = machineId(root);
      } catch {
        // no machine id yet (very early boot): an empty value, as sysinfo gives
      }
      return {
        node: { hostname: readInRoot(root, "/etc/hostname")?.trim() ?? "", machineid },
        os: {
          name: os.PRETTY_NAME ?? "",
          vendor: os.ID ?? "",
          version: os.VERSION_ID ?? "",
          release: os.VERSION_ID ?? "",
          architecture: goArch,
        },
        kernel: { release: root === "/" ? release() : "", architecture: goArch },
      };
    },
  });
}

/** Render a command or file content as yip does (only when it holds a template). */
function rendered(env: StepEnv, text: string): string {
  return text.includes("{{") ? renderTemplate(text, nodeTemplateData(env.root)) : text;
}

/** `files`: write each file with its content, mode (default 0644) and owner. */
export function stepFiles(env: StepEnv, step: Step): void {
  const files = (step.files as Record<string, unknown>[] | undefined) ?? [];
  if (!files.length) return;
  const db = loadAccounts(env.root);
  for (const f of files) {
    const path = String(f.path);
    const mode = parseMode(f.permissions, 0o644);
    const { uid, gid } = ownership(db, f);
    let data = decode(rendered(env, String(f.content ?? "")), f.encoding as string | undefined);
    if (f.append) {
      const old = readInRoot(env.root, path);
      if (old !== undefined) data = Buffer.concat([Buffer.from(old), data]);
    }
    const r = writeFileInRoot(env.root, path, data, { mode, uid: uid ?? 0, gid: gid ?? 0 });
    env.log(
      `files: ${r === "unchanged" ? "unchanged" : r} ${path} (${octal(mode)}, ${describeOwner(uid, gid)}, ${data.length} bytes)`,
    );
  }
}

/** `directories`: create each directory (and parents), then set its mode (default 0755) and owner. */
export function stepDirectories(env: StepEnv, step: Step): void {
  const dirs = (step.directories as Record<string, unknown>[] | undefined) ?? [];
  if (!dirs.length) return;
  const db = loadAccounts(env.root);
  for (const d of dirs) {
    const path = String(d.path);
    const mode = parseMode(d.permissions, 0o755);
    const { uid, gid } = ownership(db, d);
    const r = mkdirInRoot(env.root, path, { mode, uid: uid ?? 0, gid: gid ?? 0 });
    env.log(`directories: ${r} ${path} (${octal(mode)}, ${describeOwner(uid, gid)})`);
  }
}

/** `dns`: write resolv.conf (default /etc/resolv.conf). */
export function stepDns(env: StepEnv, step: Step): void {
  const dns = step.dns as Record<string, unknown> | undefined;
  if (!dns) return;
  const ns = strings(dns.nameservers);
  const search = strings(dns.search);
  const options = strings(dns.options);
  if (!ns.length && !search.length && !options.length) return;
  const path = (dns.path as string | undefined) || "/etc/resolv.conf";
  const text = [
    ...ns.map((n) => `nameserver ${n}`),
    ...(search.length ? [`search ${search.join(" ")}`] : []),
    ...(options.length ? [`options ${options.join(" ")}`] : []),
  ].join("\n");
  const r = writeFileInRoot(env.root, path, `${text}\n`, { mode: 0o644, uid: 0, gid: 0 });
  env.log(`dns: ${r} ${path} (${ns.length} nameservers)`);
}

/** `downloads`: fetch each http(s) URL to path (a path ending in "/" takes the URL's file name). */
export async function stepDownloads(env: StepEnv, step: Step): Promise<void> {
  const list = (step.downloads as Record<string, unknown>[] | undefined) ?? [];
  if (!list.length) return;
  const db = loadAccounts(env.root);
  for (const d of list) {
    const url = String(d.url ?? "");
    if (!/^https?:\/\//i.test(url))
      throw new Error(`downloads: only http(s) URLs are fetched, not ${JSON.stringify(url)}`);
    let path = String(d.path ?? "");
    if (!path) throw new Error(`downloads: ${url} has no path`);
    if (path.endsWith("/")) {
      const base = new URL(url).pathname.split("/").filter(Boolean).pop();
      if (!base) throw new Error(`downloads: cannot name a file after ${url}; give a full path`);
      path += base;
    }
    const timeout = typeof d.timeout === "number" && d.timeout > 0 ? d.timeout * 1000 : 60_000;
    const signals = [AbortSignal.timeout(timeout), ...(env.signal ? [env.signal] : [])];
    const res = await fetch(url, { signal: AbortSignal.any(signals) });
    if (!res.ok) throw new Error(`downloads: ${url}: HTTP ${res.status}`);
    const data = Buffer.from(await res.arrayBuffer());
    const mode = parseMode(d.permissions, 0o644);
    const { uid, gid } = ownership(db, d);
    const r = writeFileInRoot(env.root, path, data, { mode, uid: uid ?? 0, gid: gid ?? 0 });
    env.log(`downloads: ${r} ${path} from ${url} (${octal(mode)}, ${data.length} bytes)`);
  }
}

function entities(step: Step, key: string): { entity: Entity; path?: string }[] {
  const list = (step[key] as Record<string, unknown>[] | undefined) ?? [];
  return list.map((x, i) => {
    let entity: unknown;
    try {
      entity = parseYaml(String(x.entity ?? ""), { version: "1.1" });
    } catch (err) {
      throw new Error(`${key}[${i}].entity is not valid YAML: ${(err as Error).message.split("\n")[0]}`);
    }
    if (entity === null || typeof entity !== "object" || Array.isArray(entity)) {
      throw new Error(`${key}[${i}].entity must be a YAML map with a kind`);
    }
    return { entity: entity as Entity, path: x.path ? String(x.path) : undefined };
  });
}

/** `ensure_entities`: add or replace passwd/shadow/group lines described as yip entities. */
export function stepEnsureEntities(env: StepEnv, step: Step): void {
  const list = entities(step, "ensure_entities");
  if (!list.length) return;
  const db = loadAccounts(env.root);
  for (const { entity, path } of list)
    ensureEntity(db, entity, path, (m) => env.log(`ensure_entities: ${m}`));
  const changed = saveAccounts(env.root, db);
  env.log(`ensure_entities: ${changed.length ? `wrote ${changed.join(", ")}` : "account files unchanged"}`);
}

/** `delete_entities`: remove passwd/shadow/group lines. */
export function stepDeleteEntities(env: StepEnv, step: Step): void {
  const list = entities(step, "delete_entities");
  if (!list.length) return;
  const db = loadAccounts(env.root);
  for (const { entity, path } of list)
    deleteEntity(db, entity, path, (m) => env.log(`delete_entities: ${m}`));
  const changed = saveAccounts(env.root, db);
  env.log(`delete_entities: ${changed.length ? `wrote ${changed.join(", ")}` : "account files unchanged"}`);
}

/** `commands`: each with sh -c, in order; the first failure fails the step. */
export async function stepCommands(env: StepEnv, step: Step): Promise<void> {
  for (const raw of strings(step.commands)) {
    const c = rendered(env, raw);
    env.log(`commands: running ${JSON.stringify(c.length > 200 ? `${c.slice(0, 197)}...` : c)}`);
    const out = await shell(env, c);
    for (const l of `${out.stdout}${out.stderr}`.split("\n").filter(Boolean).slice(-20)) env.log(`  | ${l}`);
  }
}

/** The machine id from /etc/machine-id (or /var/lib/dbus/machine-id) in root. */
export function machineId(root: string): string {
  for (const p of ["/etc/machine-id", "/var/lib/dbus/machine-id"]) {
    const v = readInRoot(root, p)?.trim();
    if (v) return v;
  }
  throw new Error("no machine id: /etc/machine-id is missing or empty");
}

/** `hostname`: expand the template, write /etc/hostname and the 127.0.1.1 line of /etc/hosts. */
export async function stepHostname(env: StepEnv, step: Step): Promise<void> {
  const tpl = step.hostname as string | undefined;
  if (!tpl) return;
  // yip's hostname values: .MachineID (read only when used) and .Random (new at every render).
  const data = Object.defineProperty({ Random: randomString() }, "MachineID", {
    enumerable: true,
    get: () => machineId(env.root),
  });
  const name = renderTemplate(tpl, data);
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(name)) {
    throw new Error(`invalid hostname ${JSON.stringify(name)}`);
  }
  const r = writeFileInRoot(env.root, "/etc/hostname", `${name}\n`, { mode: 0o644, uid: 0, gid: 0 });
  const hosts = readInRoot(env.root, "/etc/hosts") ?? "127.0.0.1\tlocalhost\n";
  const lines = hosts.split("\n").filter((l, i, a) => !(l === "" && i === a.length - 1));
  const idx = lines.findIndex((l) => /^127\.0\.1\.1\s/.test(l));
  const line = `127.0.1.1\t${name}`;
  if (idx >= 0) lines[idx] = line;
  else lines.push(line);
  writeFileInRoot(env.root, "/etc/hosts", `${lines.join("\n")}\n`, { mode: 0o644, uid: 0, gid: 0 });
  env.log(`hostname: ${r === "unchanged" ? "already" : "set to"} ${name}`);
  if (env.root === "/") {
    try {
      await run("hostname", [name]);
    } catch (err) {
      env.log(`hostname: could not set the running hostname: ${(err as Error).message.split("\n")[0]}`);
    }
  }
}

/** `sysctl`: write /proc/sys on the running system; not applicable to another root. */
export function stepSysctl(env: StepEnv, step: Step): void {
  const entries = Object.entries((step.sysctl as Record<string, unknown> | undefined) ?? {});
  if (!entries.length) return;
  if (env.root !== "/") {
    env.log(`sysctl: skipped ${entries.length} key(s): only applied to the running system (root /)`);
    return;
  }
  for (const [k, v] of entries) {
    if (!/^[A-Za-z0-9_.\-/]+$/.test(k) || k.includes(".."))
      throw new Error(`invalid sysctl key ${JSON.stringify(k)}`);
    writeFileSync(`/proc/sys/${k.replace(/\./g, "/")}`, String(v));
    env.log(`sysctl: ${k} = ${v}`);
  }
}

/** `users` (a map of name → user) applied to passwd/shadow/group in root. */
export function stepUsers(env: StepEnv, step: Step): void {
  const users = step.users as Record<string, UserSpec> | undefined;
  if (!users || !Object.keys(users).length) return;
  const db = loadAccounts(env.root);
  for (const [key, spec] of Object.entries(users)) {
    applyUser(env.root, db, { ...spec, name: spec?.name || key }, (m) => env.log(`users: ${m}`));
  }
  const changed = saveAccounts(env.root, db);
  env.log(`users: ${changed.length ? `wrote ${changed.join(", ")}` : "account files unchanged"}`);
}

async function fetchKeys(env: StepEnv, key: string): Promise<string[]> {
  const m = /^(github|gitlab):([A-Za-z0-9_.-]+)$/.exec(key.trim());
  if (!m) return [key.trim()];
  const base =
    m[1] === "github"
      ? (env.keyServers?.github ?? "https://github.com")
      : (env.keyServers?.gitlab ?? "https://gitlab.com");
  const res = await fetch(`${base}/${m[2]}.keys`, { signal: AbortSignal.timeout(15_000) });
  if (!res.ok) throw new Error(`fetching ${key}: HTTP ${res.status}`);
  return (await res.text())
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
}

/** `authorized_keys` (user → keys): append missing keys to ~/.ssh/authorized_keys (0600, dir 0700). */
export async function stepAuthorizedKeys(env: StepEnv, step: Step): Promise<void> {
  // authorized_keys, plus the ssh_authorized_keys of the step's users (as yip does).
  const map: Record<string, string[]> = {
    ...((step.authorized_keys as Record<string, string[]> | undefined) ?? {}),
  };
  for (const [key, spec] of Object.entries((step.users as Record<string, UserSpec> | undefined) ?? {})) {
    const keys = spec?.ssh_authorized_keys ?? [];
    if (!keys.length) continue;
    const name = spec.name || key;
    map[name] = [...new Set([...(map[name] ?? []), ...keys])];
  }
  if (!Object.keys(map).length) return;
  const db = loadAccounts(env.root);
  const problems: string[] = [];
  for (const [user, keys] of Object.entries(map)) {
    if (!keys?.length) continue;
    const u = db.passwd.find(user) ? lookupUser(db, user) : undefined;
    if (!u) {
      problems.push(`user ${user} does not exist`);
      continue;
    }
    const wanted: string[] = [];
    for (const k of keys) {
      try {
        wanted.push(...(await fetchKeys(env, k)));
      } catch (err) {
        problems.push((err as Error).message);
      }
    }
    const dir = `${u.home.replace(/\/$/, "")}/.ssh`;
    const file = `${dir}/authorized_keys`;
    mkdirInRoot(env.root, dir, { mode: 0o700, uid: u.uid, gid: u.gid });
    const old = readInRoot(env.root, file) ?? "";
    const lines = old.split("\n").filter(Boolean);
    const added = wanted.filter((k, i) => !lines.includes(k) && wanted.indexOf(k) === i);
    const r = writeFileInRoot(env.root, file, [...lines, ...added].map((l) => `${l}\n`).join(""), {
      mode: 0o600,
      uid: u.uid,
      gid: u.gid,
    });
    env.log(
      `authorized_keys: ${user}: ${added.length} key(s) added, ${r === "unchanged" ? "file unchanged" : `${r} ${file}`}`,
    );
  }
  if (problems.length) throw new Error(problems.join("; "));
}

/** `modules`: modprobe on the running system; not applicable to another root. */
export async function stepModules(env: StepEnv, step: Step): Promise<void> {
  const mods = strings(step.modules);
  if (!mods.length) return;
  if (env.root !== "/") {
    env.log(`modules: skipped ${mods.join(", ")}: only loaded on the running system (root /)`);
    return;
  }
  for (const m of mods) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_-]*$/.test(m)) throw new Error(`invalid module name ${JSON.stringify(m)}`);
    await run("modprobe", [m]);
    env.log(`modules: loaded ${m}`);
  }
}

function iniValue(v: unknown): string {
  return String(v).replace(/\n/g, " ");
}

/** `timesyncd`: write the [Time] section of /etc/systemd/timesyncd.conf. */
export function stepTimesyncd(env: StepEnv, step: Step): void {
  const t = step.timesyncd as Record<string, unknown> | undefined;
  if (!t || !Object.keys(t).length) return;
  const text = `[Time]\n${Object.entries(t)
    .map(([k, v]) => `${k}=${iniValue(v)}`)
    .join("\n")}\n`;
  const r = writeFileInRoot(env.root, "/etc/systemd/timesyncd.conf", text, { mode: 0o644, uid: 0, gid: 0 });
  env.log(`timesyncd: ${r} /etc/systemd/timesyncd.conf`);
}

/** `systemctl`: enable/disable/mask by symlinks (or systemctl when systemd runs this root); start needs systemd. */
export async function stepSystemctl(env: StepEnv, step: Step): Promise<void> {
  const s = step.systemctl as Record<string, unknown> | undefined;
  if (!s) return;
  for (const o of (s.overrides as Record<string, unknown>[] | undefined) ?? []) {
    const svc = unitName(String(o.service ?? ""));
    let name = String(o.name || "override-kairos.conf");
    if (!name.endsWith(".conf")) name += ".conf";
    if (name.includes("/")) throw new Error(`invalid override name ${JSON.stringify(name)}`);
    const path = `/etc/systemd/system/${svc}.d/${name}`;
    const r = writeFileInRoot(env.root, path, String(o.content ?? ""), { mode: 0o644, uid: 0, gid: 0 });
    env.log(`systemctl: ${r} ${path}`);
  }
  const act = async (
    verb: "enable" | "disable" | "mask",
    offline: (root: string, u: string) => string[] | string,
  ) => {
    for (const u of strings(s[verb])) {
      if (env.systemdRunning) {
        await run("systemctl", [verb, unitName(u)]);
        env.log(`systemctl: ${verb} ${unitName(u)}`);
      } else {
        const out = offline(env.root, u);
        for (const l of Array.isArray(out) ? out : [out]) env.log(`systemctl: ${verb} ${unitName(u)}: ${l}`);
      }
    }
  };
  await act("enable", enableUnit);
  await act("disable", disableUnit);
  await act("mask", maskUnit);
  for (const u of strings(s.start)) {
    if (env.systemdRunning) {
      await run("systemctl", ["start", "--no-block", unitName(u)]);
      env.log(`systemctl: start ${unitName(u)}`);
    } else env.log(`systemctl: start ${unitName(u)}: skipped, systemd is not running in this root`);
  }
}

function envLine(k: string, v: unknown): string {
  const s = String(v);
  return /^[A-Za-z0-9_./:@%+,-]*$/.test(s)
    ? `${k}=${s}`
    : `${k}="${s.replace(/(["\\$`])/g, "\\$1").replace(/\n/g, "\\n")}"`;
}

/** `environment`: set KEY=VALUE lines in environment_file (default /etc/environment), keeping others. */
export function stepEnvironment(env: StepEnv, step: Step): void {
  const vars = step.environment as Record<string, unknown> | undefined;
  if (!vars || !Object.keys(vars).length) return;
  const path = (step.environment_file as string | undefined) || "/etc/environment";
  const lines = (readInRoot(env.root, path) ?? "").split("\n").filter(Boolean);
  for (const [k, v] of Object.entries(vars)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k))
      throw new Error(`invalid environment variable name ${JSON.stringify(k)}`);
    const idx = lines.findIndex((l) => l.replace(/^export\s+/, "").startsWith(`${k}=`));
    if (idx >= 0) lines[idx] = envLine(k, v);
    else lines.push(envLine(k, v));
  }
  const r = writeFileInRoot(env.root, path, `${lines.join("\n")}\n`, { mode: 0o644, uid: 0, gid: 0 });
  env.log(`environment: ${r} ${path} (${Object.keys(vars).join(", ")})`);
}

/** systemd-firstboot options a step may set (never --prompt-* or --copy-*, which read the host). */
const FIRSTBOOT_KEYS = new Set([
  "locale",
  "locale-messages",
  "keymap",
  "timezone",
  "hostname",
  "root-password",
  "root-password-hashed",
  "root-shell",
  "kernel-command-line",
]);

/** `systemd_firstboot`: run systemd-firstboot with --KEY=VALUE (and --root when root is not /). */
export async function stepSystemdFirstboot(env: StepEnv, step: Step): Promise<void> {
  const opts = Object.entries((step.systemd_firstboot as Record<string, unknown> | undefined) ?? {});
  if (!opts.length) return;
  const args = env.root === "/" ? [] : [`--root=${env.root}`];
  const shown: string[] = [];
  for (const [k, v] of opts) {
    const key = k.toLowerCase().replace(/_/g, "-");
    if (key === "force") {
      if (v === true || v === "true") args.push("--force");
      continue;
    }
    if (!FIRSTBOOT_KEYS.has(key)) {
      throw new Error(
        `systemd_firstboot: unsupported key ${JSON.stringify(k)} (known: ${[...FIRSTBOOT_KEYS].join(", ")}, force)`,
      );
    }
    args.push(`--${key}=${String(v)}`);
    shown.push(key.startsWith("root-password") ? `${key}=…` : `${key}=${String(v)}`);
  }
  await run("systemd-firstboot", args, { signal: env.signal });
  env.log(`systemd_firstboot: ${shown.join(" ")}`);
}

/** Step keys we accept in the schema but do not act on yet: logged, never silently dropped. */
export const UNSUPPORTED_KEYS = ["git", "datasource", "layout", "packages", "unpack_images", "after"];

export function existsInRoot(root: string, path: string): boolean {
  try {
    return existsSync(resolveInRoot(root, path));
  } catch {
    return false;
  }
}
