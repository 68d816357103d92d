import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { resolveInRoot } from "../../config/index.js";

/** Result of an idempotent write: whether anything changed on disk. */
export type WriteOutcome = "created" | "updated" | "unchanged";

export interface WriteSpec {
  mode: number;
  uid?: number;
  gid?: number;
}

/** Create a directory and its missing parents inside root (parents 0755, owned by root). */
export function mkdirInRoot(root: string, path: string, spec?: WriteSpec): WriteOutcome {
  const real = resolveInRoot(root, path);
  let existed = true;
  try {
    const st = statSync(real);
    if (!st.isDirectory()) throw new Error(`${path} exists and is not a directory`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    existed = false;
    // Create parents one by one so each is resolved inside root (no symlink escapes).
    const parts = path.split("/").filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const p = resolveInRoot(root, `/${parts.slice(0, i).join("/")}`);
      try {
        mkdirSync(p, { mode: 0o755 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      }
    }
  }
  if (!spec) return existed ? "unchanged" : "created";
  const st = statSync(real);
  let changed = !existed;
  if ((st.mode & 0o7777) !== spec.mode) {
    chmodSync(real, spec.mode);
    changed = true;
  }
  const uid = spec.uid ?? st.uid;
  const gid = spec.gid ?? st.gid;
  if (st.uid !== uid || st.gid !== gid) {
    chownSync(real, uid, gid);
    changed = true;
  }
  if (!existed) return "created";
  return changed ? "updated" : "unchanged";
}

/**
 * Write a file inside root only if its content, mode or owner differ: a temporary file in the
 * same directory, fsync, then rename over the old one, so a crash leaves the old or the new file.
 */
export function writeFileInRoot(
  root: string,
  path: string,
  data: Buffer | string,
  spec: WriteSpec,
): WriteOutcome {
  const buf = typeof data === "string" ? Buffer.from(data) : data;
  mkdirInRoot(root, dirname(path));
  const real = resolveInRoot(root, path);
  let old: { buf: Buffer; mode: number; uid: number; gid: number } | undefined;
  try {
    const st = lstatSync(real);
    if (!st.isFile()) throw new Error(`${path} exists and is not a regular file`);
    old = { buf: readFileSync(real), mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const uid = spec.uid ?? old?.uid ?? 0;
  const gid = spec.gid ?? old?.gid ?? 0;
  if (old?.buf.equals(buf) && old.mode === spec.mode && old.uid === uid && old.gid === gid)
    return "unchanged";
  const tmp = join(dirname(real), `.${randomBytes(6).toString("hex")}.kairos-tmp`);
  const fd = openSync(
    tmp,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    0o600,
  );
  try {
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    chownSync(tmp, uid, gid);
    chmodSync(tmp, spec.mode);
    renameSync(tmp, real);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  return old ? "updated" : "created";
}

/** Read a file inside root, or undefined if it does not exist. */
export function readInRoot(root: string, path: string): string | undefined {
  try {
    return readFileSync(resolveInRoot(root, path), "utf8");
  } catch (err) {
    if (
      (err as NodeJS.ErrnoException).code === "ENOENT" ||
      (err as NodeJS.ErrnoException).code === "ENOTDIR"
    ) {
      return undefined;
    }
    throw err;
  }
}

/** Mode and owner of a file inside root, or undefined. */
export function statInRoot(
  root: string,
  path: string,
): { mode: number; uid: number; gid: number } | undefined {
  try {
    const st = statSync(resolveInRoot(root, path));
    return { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  } catch {
    return undefined;
  }
}

/** "0644" for 420. */
export function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}

/** A mode from the config: a number (YAML 1.1 octal already applied) or an octal string. */
export function parseMode(v: unknown, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v === "number") return v;
  const s = String(v).replace(/^0o/, "");
  if (!/^[0-7]{1,4}$/.test(s)) throw new Error(`invalid mode ${JSON.stringify(v)}; expected octal like 0644`);
  return Number.parseInt(s, 8);
}
