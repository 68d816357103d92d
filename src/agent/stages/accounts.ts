import { cpSync, existsSync, lchownSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { resolveInRoot } from "../../config/index.js";
import { mkdirInRoot, readInRoot, statInRoot, writeFileInRoot } from "./fsops.js";
import { isCryptHash, sha512crypt, verifySha512crypt } from "./sha512crypt.js";

/**
 * /etc/passwd, /etc/shadow, /etc/group (and /etc/gshadow when present) inside a root, edited
 * as text: lines we do not touch are kept byte for byte, so writing twice changes nothing.
 */

const NAME_RE = /^[a-z_][a-z0-9_.-]{0,31}\$?$/i;

/** A user as the cloud-config describes it (top-level `users` item or a step's `users` value). */
export interface UserSpec {
  name?: string;
  passwd?: string;
  groups?: string | string[];
  ssh_authorized_keys?: string[];
  shell?: string;
  homedir?: string;
  lock_passwd?: boolean;
  gecos?: string;
  primary_group?: string;
  no_create_home?: boolean;
  no_user_group?: boolean;
  system?: boolean;
  uid?: number | string;
}

type Row = string[];

class Table {
  rows: (Row | string)[];
  constructor(text: string | undefined) {
    this.rows = (text ?? "")
      .split("\n")
      .filter((l, i, a) => !(l === "" && i === a.length - 1))
      .map((l) => (l.startsWith("#") || l.trim() === "" ? l : l.split(":")));
  }
  find(name: string): Row | undefined {
    return this.rows.find((r): r is Row => Array.isArray(r) && r[0] === name);
  }
  entries(): Row[] {
    return this.rows.filter((r): r is Row => Array.isArray(r));
  }
  text(): string {
    return (
      this.rows.map((r) => (Array.isArray(r) ? r.join(":") : r)).join("\n") + (this.rows.length ? "\n" : "")
    );
  }
}

function checkField(what: string, v: string): string {
  if (/[:\n\r]/.test(v)) throw new Error(`${what} ${JSON.stringify(v)} must not contain ":" or a line break`);
  return v;
}

/** Today as days since the epoch (shadow's "last change" field); SOURCE_DATE_EPOCH wins. */
function today(): string {
  const sde = process.env.SOURCE_DATE_EPOCH;
  const secs = sde && /^\d+$/.test(sde) ? Number(sde) : Date.now() / 1000;
  return String(Math.floor(secs / 86400));
}

export interface AccountsDb {
  passwd: Table;
  shadow: Table;
  group: Table;
  gshadow?: Table;
}

export function loadAccounts(root: string): AccountsDb {
  const gs = readInRoot(root, "/etc/gshadow");
  return {
    passwd: new Table(readInRoot(root, "/etc/passwd")),
    shadow: new Table(readInRoot(root, "/etc/shadow")),
    group: new Table(readInRoot(root, "/etc/group")),
    gshadow: gs === undefined ? undefined : new Table(gs),
  };
}

/** Write back the account files that changed, keeping their existing mode and owner. */
export function saveAccounts(root: string, db: AccountsDb): string[] {
  const changed: string[] = [];
  const shadowGid = Number(db.group.find("shadow")?.[2] ?? 0);
  const files: [string, Table | undefined, number, number][] = [
    ["/etc/passwd", db.passwd, 0o644, 0],
    ["/etc/group", db.group, 0o644, 0],
    ["/etc/shadow", db.shadow, shadowGid ? 0o640 : 0o600, shadowGid],
    ["/etc/gshadow", db.gshadow, shadowGid ? 0o640 : 0o600, shadowGid],
  ];
  for (const [path, table, mode, gid] of files) {
    if (!table) continue;
    const cur = statInRoot(root, path);
    const outcome = writeFileInRoot(root, path, table.text(), {
      mode: cur?.mode ?? mode,
      uid: cur?.uid ?? 0,
      gid: cur?.gid ?? gid,
    });
    if (outcome !== "unchanged") changed.push(path);
  }
  return changed;
}

function nextFreeId(used: Set<number>, from: number, to: number, down = false): number {
  if (down) {
    for (let i = to; i >= from; i--) if (!used.has(i)) return i;
  } else {
    for (let i = from; i <= to; i++) if (!used.has(i)) return i;
  }
  throw new Error(`no free id between ${from} and ${to}`);
}

function ensureGroup(
  db: AccountsDb,
  name: string,
  log: (m: string) => void,
  system = false,
  gid?: number,
): number {
  checkField("group name", name);
  if (!NAME_RE.test(name)) throw new Error(`invalid group name ${JSON.stringify(name)}`);
  const g = db.group.find(name);
  if (g) return Number(g[2]);
  const used = new Set(db.group.entries().map((r) => Number(r[2])));
  const id =
    gid !== undefined && !used.has(gid)
      ? gid
      : system
        ? nextFreeId(used, 100, 999, true)
        : nextFreeId(used, 1000, 59999);
  db.group.rows.push([name, "x", String(id), ""]);
  db.gshadow?.rows.push([name, "!", "", ""]);
  log(`created group ${name} (gid ${id})`);
  return id;
}

function addMember(db: AccountsDb, group: string, user: string): boolean {
  let changed = false;
  for (const [table, idx] of [
    [db.group, 3],
    [db.gshadow, 3],
  ] as const) {
    const row = table?.find(group);
    if (!row) continue;
    while (row.length <= idx) row.push("");
    const members = row[idx]!.split(",").filter(Boolean);
    if (!members.includes(user)) {
      members.push(user);
      row[idx] = members.join(",");
      changed = true;
    }
  }
  return changed;
}

/** The shadow hash to store for a configured password, reusing the old hash when it still matches. */
export function shadowHash(passwd: string, old: string | undefined): string {
  // Crypt hashes, locked hashes ("!$6$…") and the markers "!", "*", "!!" are stored as given.
  if (isCryptHash(passwd.replace(/^!+/, "")) || /^[!*]+$/.test(passwd)) return passwd;
  const bare = old?.replace(/^!+/, "");
  if (bare && verifySha512crypt(passwd, bare)) return bare;
  return sha512crypt(passwd);
}

/**
 * Create or update one user. Plain passwords are hashed (SHA-512 crypt); crypt hashes are
 * stored as given. Returns what was done, for the log.
 */
export function applyUser(root: string, db: AccountsDb, spec: UserSpec, log: (m: string) => void): void {
  const name = spec.name ?? "";
  if (!NAME_RE.test(name)) throw new Error(`invalid user name ${JSON.stringify(name)}`);
  for (const [what, v] of [
    ["gecos", spec.gecos],
    ["homedir", spec.homedir],
    ["shell", spec.shell],
    ["passwd", spec.passwd],
  ] as const) {
    if (v !== undefined) checkField(what, v);
  }
  let row = db.passwd.find(name);
  const created = !row;
  if (!row) {
    const usedUids = new Set(db.passwd.entries().map((r) => Number(r[2])));
    let uid: number;
    if (spec.uid !== undefined && String(spec.uid) !== "") {
      uid = Number(spec.uid);
      if (!Number.isInteger(uid) || uid < 0) throw new Error(`invalid uid ${JSON.stringify(spec.uid)}`);
    } else uid = spec.system ? nextFreeId(usedUids, 100, 999, true) : nextFreeId(usedUids, 1000, 59999);
    let gid: number;
    if (spec.primary_group) gid = ensureGroup(db, spec.primary_group, log, spec.system);
    else if (spec.no_user_group) gid = Number(db.group.find("users")?.[2] ?? 100);
    else gid = ensureGroup(db, name, log, spec.system, uid);
    const home = spec.homedir ?? (name === "root" ? "/root" : `/home/${name}`);
    row = [name, "x", String(uid), String(gid), spec.gecos ?? "", home, spec.shell ?? "/bin/sh"];
    db.passwd.rows.push(row);
    log(`created user ${name} (uid ${uid}, gid ${gid}, home ${home})`);
  } else {
    const before = row.join(":");
    if (spec.gecos !== undefined) row[4] = spec.gecos;
    if (spec.homedir !== undefined) row[5] = spec.homedir;
    if (spec.shell !== undefined) row[6] = spec.shell;
    if (spec.primary_group) row[3] = String(ensureGroup(db, spec.primary_group, log));
    if (row.join(":") !== before) log(`updated user ${name}`);
  }
  // Password in /etc/shadow.
  let sh = db.shadow.find(name);
  if (!sh) {
    sh = [name, "!", today(), "0", "99999", "7", "", "", ""];
    db.shadow.rows.push(sh);
  }
  if (spec.passwd !== undefined && spec.passwd !== "") {
    const hash = shadowHash(spec.passwd, sh[1]);
    const want = spec.lock_passwd && !hash.startsWith("!") ? `!${hash}` : hash;
    if (sh[1] !== want) {
      sh[1] = want;
      sh[2] = today();
      log(`set password of ${name}${spec.lock_passwd ? " (locked)" : ""}`);
    }
  } else if (spec.lock_passwd && !sh[1]!.startsWith("!")) {
    sh[1] = `!${sh[1]}`;
    log(`locked password of ${name}`);
  }
  // Supplementary groups.
  const groups = typeof spec.groups === "string" ? spec.groups.split(",") : (spec.groups ?? []);
  for (const g of groups.map((x) => x.trim()).filter(Boolean)) {
    ensureGroup(db, g, log);
    if (addMember(db, g, name)) log(`added ${name} to group ${g}`);
  }
  // Home directory, created once (with /etc/skel), never rewritten.
  if (created && !spec.no_create_home) {
    const home = row[5]!;
    const uid = Number(row[2]);
    const gid = Number(row[3]);
    if (home && home !== "/" && !existsSync(resolveInRoot(root, home))) {
      mkdirInRoot(root, home, { mode: 0o700, uid, gid });
      const skel = resolveInRoot(root, "/etc/skel");
      if (existsSync(skel)) {
        const dest = resolveInRoot(root, home);
        cpSync(skel, dest, { recursive: true, verbatimSymlinks: true });
        chownTree(dest, uid, gid);
      }
      log(`created home ${home} (0700, ${uid}:${gid})`);
    }
  }
}

/** uid, gid and home of a user in root's /etc/passwd. */
export function lookupUser(
  db: AccountsDb,
  nameOrId: string | number,
): { uid: number; gid: number; home: string } | undefined {
  const row =
    typeof nameOrId === "number" || /^\d+$/.test(nameOrId)
      ? db.passwd.entries().find((r) => r[2] === String(nameOrId))
      : db.passwd.find(nameOrId);
  if (!row) return typeof nameOrId === "number" ? { uid: nameOrId, gid: nameOrId, home: "/" } : undefined;
  return { uid: Number(row[2]), gid: Number(row[3]), home: row[5] ?? "/" };
}

/** gid of a group in root's /etc/group. */
export function lookupGroup(db: AccountsDb, nameOrId: string | number): number | undefined {
  if (typeof nameOrId === "number" || /^\d+$/.test(nameOrId)) return Number(nameOrId);
  const row = db.group.find(nameOrId);
  return row ? Number(row[2]) : undefined;
}

function chownTree(dir: string, uid: number, gid: number): void {
  lchownSync(dir, uid, gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) chownTree(p, uid, gid);
    else lchownSync(p, uid, gid);
  }
}

/** The account file an entity kind lives in, and its field order. */
const ENTITY_KINDS: Record<string, { file: string; fields: string[]; id: string }> = {
  user: {
    file: "/etc/passwd",
    fields: ["username", "password", "uid", "gid", "info", "homedir", "shell"],
    id: "username",
  },
  shadow: {
    file: "/etc/shadow",
    fields: [
      "username",
      "password",
      "last_changed",
      "minimum_changed",
      "maximum_changed",
      "warn",
      "inactive",
      "expire",
      "reserved",
    ],
    id: "username",
  },
  group: { file: "/etc/group", fields: ["group_name", "password", "gid", "users"], id: "group_name" },
};

/** An account entity as yip's `ensure_entities` / `delete_entities` describe it (a YAML document). */
export interface Entity {
  kind: string;
  [field: string]: unknown;
}

function entityTable(db: AccountsDb, file: string): Table {
  if (file === "/etc/passwd") return db.passwd;
  if (file === "/etc/shadow") return db.shadow;
  if (file === "/etc/group") return db.group;
  throw new Error(`entities can only be applied to /etc/passwd, /etc/shadow or /etc/group, not ${file}`);
}

function entitySpec(
  e: Entity,
  path: string | undefined,
): { kind: (typeof ENTITY_KINDS)[string]; table: string } {
  const kind = ENTITY_KINDS[String(e.kind)];
  if (!kind) throw new Error(`unsupported entity kind ${JSON.stringify(e.kind)} (user, shadow or group)`);
  const file = path || kind.file;
  if (file !== kind.file) throw new Error(`a ${e.kind} entity belongs in ${kind.file}, not ${file}`);
  return { kind, table: file };
}

/** Two comma-separated member lists merged, first occurrence order kept, empties dropped. */
function unionMembers(a: string, b: string): string {
  return [...new Set([...a.split(","), ...b.split(",")].filter(Boolean))].join(",");
}

/**
 * ensure_entities: add or replace one passwd/shadow/group line. Like yip: a shadow password that
 * is not a hash is hashed, `last_changed: now` becomes today; a group keeps its existing members
 * (the entity's `users` are added) and its gid/password when the entity leaves them empty.
 */
export function ensureEntity(
  db: AccountsDb,
  e: Entity,
  path: string | undefined,
  log: (m: string) => void,
): void {
  const { kind, table } = entitySpec(e, path);
  const t = entityTable(db, table);
  const val = (f: string) => (e[f] === undefined || e[f] === null ? "" : String(e[f]));
  const id = val(kind.id);
  if (!NAME_RE.test(id)) throw new Error(`invalid ${kind.id} ${JSON.stringify(id)}`);
  const row = kind.fields.map((f) => checkField(f, val(f)));
  const cur = t.find(id);
  if (e.kind === "shadow") {
    if (row[1] !== "") row[1] = shadowHash(row[1]!, cur?.[1]);
    if (row[2] === "now") row[2] = today();
  }
  if (e.kind === "group" && cur) {
    row[3] = unionMembers(cur[3] ?? "", row[3]!);
    if (row[1] === "") row[1] = cur[1] ?? "";
    if (row[2] === "") row[2] = cur[2] ?? "";
  }
  if (e.kind === "group" && db.gshadow) {
    // Keep /etc/gshadow in step with /etc/group, as groupadd does (grpck checks it).
    const gs = db.gshadow.find(id);
    if (!gs) db.gshadow.rows.push([id, "!", "", row[3]!]);
    else {
      while (gs.length < 4) gs.push("");
      gs[3] = unionMembers(gs[3]!, row[3]!);
    }
  }
  if (cur) {
    if (cur.join(":") === row.join(":")) return;
    cur.splice(0, cur.length, ...row);
    log(`updated ${e.kind} ${id} in ${table}`);
  } else {
    t.rows.push(row);
    log(`added ${e.kind} ${id} to ${table}`);
  }
}

/** delete_entities: remove the line of that user/shadow/group entry, if present. */
export function deleteEntity(
  db: AccountsDb,
  e: Entity,
  path: string | undefined,
  log: (m: string) => void,
): void {
  const { kind, table } = entitySpec(e, path);
  const t = entityTable(db, table);
  const id = e[kind.id] === undefined ? "" : String(e[kind.id]);
  const before = t.rows.length;
  t.rows = t.rows.filter((r) => !(Array.isArray(r) && r[0] === id));
  if (e.kind === "group" && db.gshadow)
    db.gshadow.rows = db.gshadow.rows.filter((r) => !(Array.isArray(r) && r[0] === id));
  if (t.rows.length !== before) log(`removed ${e.kind} ${id} from ${table}`);
}
