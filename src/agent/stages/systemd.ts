import { lstatSync, readdirSync, readlinkSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { resolveInRoot } from "../../config/index.js";
import { mkdirInRoot, readInRoot } from "./fsops.js";

/**
 * Enable, disable and mask systemd units in a root where systemd is not running, the way
 * `systemctl --root` does: by creating and removing the symlinks under /etc/systemd/system.
 */

const UNIT_DIRS = [
  "/etc/systemd/system",
  "/run/systemd/system",
  "/usr/local/lib/systemd/system",
  "/usr/lib/systemd/system",
  "/lib/systemd/system",
];
const ETC = "/etc/systemd/system";
const UNIT_RE = /^[A-Za-z0-9:_.\\@-]+$/;

/** "sshd" → "sshd.service"; names with a known suffix stay as they are. */
export function unitName(name: string): string {
  if (!UNIT_RE.test(name) || name.includes("..") || name.startsWith("-")) {
    throw new Error(`invalid unit name ${JSON.stringify(name)}`);
  }
  return /\.(service|socket|target|timer|path|mount|automount|swap|slice|scope|device)$/.test(name)
    ? name
    : `${name}.service`;
}

/** foo@bar.service → foo@.service (the template file that provides an instance). */
function templateOf(unit: string): string | undefined {
  const m = /^([^@]+)@([^.]+)(\.[a-z]+)$/.exec(unit);
  return m && m[2] !== "" ? `${m[1]}@${m[3]}` : undefined;
}

/** Path (inside root) of the unit file that defines `unit`, or undefined. */
export function findUnit(root: string, unit: string): string | undefined {
  for (const name of [unit, templateOf(unit)]) {
    if (!name) continue;
    for (const dir of UNIT_DIRS) {
      const p = `${dir}/${name}`;
      try {
        const real = resolveInRoot(root, p);
        const st = lstatSync(real);
        if (st.isSymbolicLink() && readlinkSync(real) === "/dev/null") continue;
        return p;
      } catch {
        // not in this directory
      }
    }
  }
  return undefined;
}

/** The [Install] section's lists: WantedBy, RequiredBy, Alias, Also, DefaultInstance. */
export function parseInstall(text: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  let inInstall = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("[")) {
      inInstall = line === "[Install]";
      continue;
    }
    if (!inInstall || line.startsWith("#") || line.startsWith(";")) continue;
    const m = /^([A-Za-z]+)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    const key = m[1]!;
    if (m[2] === "") out[key] = [];
    else out[key] = [...(out[key] ?? []), ...m[2]!.split(/\s+/)];
  }
  return out;
}

/** Make `link` (inside root) a symlink to `target`; "unchanged" if it already is. */
function ensureLink(root: string, link: string, target: string): "created" | "unchanged" {
  const dir = link.slice(0, link.lastIndexOf("/"));
  mkdirInRoot(root, dir);
  const real = resolveInRoot(root, link, { followLast: false });
  try {
    const st = lstatSync(real);
    if (st.isSymbolicLink() && readlinkSync(real) === target) return "unchanged";
    if (!st.isSymbolicLink()) throw new Error(`${link} exists and is not a symlink; not replacing it`);
    rmSync(real);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  symlinkSync(target, real);
  return "created";
}

/** Enable a unit by creating its WantedBy/RequiredBy/Alias symlinks. Returns log lines. */
export function enableUnit(root: string, name: string, seen = new Set<string>()): string[] {
  const unit = unitName(name);
  if (seen.has(unit)) return [];
  seen.add(unit);
  const file = findUnit(root, unit);
  if (!file) throw new Error(`unit ${unit} not found in ${UNIT_DIRS.join(", ")}`);
  const install = parseInstall(readInRoot(root, file) ?? "");
  const tpl = templateOf(unit);
  let linkName = unit;
  if (!tpl && /@\./.test(unit)) {
    const inst = install.DefaultInstance?.[0];
    if (!inst)
      return [
        `${unit} is a template without DefaultInstance; enable an instance like ${unit.replace("@.", "@NAME.")}`,
      ];
    linkName = unit.replace("@.", `@${inst}.`);
  }
  const log: string[] = [];
  const wants = [
    ...(install.WantedBy ?? []).map((t) => `${t}.wants`),
    ...(install.RequiredBy ?? []).map((t) => `${t}.requires`),
  ];
  for (const w of wants) {
    const link = `${ETC}/${w}/${linkName}`;
    log.push(`${ensureLink(root, link, file) === "created" ? "created" : "kept"} ${link} → ${file}`);
  }
  for (const alias of install.Alias ?? []) {
    const link = `${ETC}/${unitName(alias)}`;
    log.push(`${ensureLink(root, link, file) === "created" ? "created" : "kept"} ${link} → ${file}`);
  }
  for (const also of install.Also ?? []) log.push(...enableUnit(root, also, seen));
  if (log.length === 0) log.push(`${unit} has no [Install] section; nothing to enable`);
  return log;
}

/** Remove every symlink under /etc/systemd/system that enables `unit` (or aliases it). */
export function disableUnit(root: string, name: string, seen = new Set<string>()): string[] {
  const unit = unitName(name);
  if (seen.has(unit)) return [];
  seen.add(unit);
  const file = findUnit(root, unit);
  const etc = resolveInRoot(root, ETC);
  const log: string[] = [];
  let entries: string[];
  try {
    entries = readdirSync(etc);
  } catch {
    return [`${unit}: nothing to disable`];
  }
  const candidates: string[] = [];
  for (const e of entries) {
    if (/\.(wants|requires)$/.test(e)) {
      try {
        for (const f of readdirSync(join(etc, e))) candidates.push(`${ETC}/${e}/${f}`);
      } catch {
        // not a directory
      }
    } else candidates.push(`${ETC}/${e}`);
  }
  for (const c of candidates) {
    const real = resolveInRoot(root, c, { followLast: false });
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(real);
    } catch {
      continue;
    }
    if (!st.isSymbolicLink()) continue;
    const target = readlinkSync(real);
    const base = c.slice(c.lastIndexOf("/") + 1);
    const inWants = /\.(wants|requires)\//.test(c);
    if (target === "/dev/null") continue; // masks are undone by unmask, not disable
    if ((inWants && base === unit) || (file !== undefined && target === file)) {
      rmSync(real);
      log.push(`removed ${c}`);
    }
  }
  if (log.length === 0) log.push(`${unit}: was not enabled`);
  // Units named in Also= are disabled together with this one, as systemctl does.
  const also = file ? (parseInstall(readInRoot(root, file) ?? "").Also ?? []) : [];
  for (const a of also) log.push(...disableUnit(root, a, seen));
  return log;
}

/** Mask a unit: /etc/systemd/system/UNIT → /dev/null. */
export function maskUnit(root: string, name: string): string {
  const unit = unitName(name);
  const link = `${ETC}/${unit}`;
  return `${ensureLink(root, link, "/dev/null") === "created" ? "created" : "kept"} ${link} → /dev/null`;
}
