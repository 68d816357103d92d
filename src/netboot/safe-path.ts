/**
 * Resolve a client-supplied file name inside a served directory: no absolute names, no "..",
 * no backslashes or NULs, no dotfiles, and no symlink that leads out of the directory.
 */
import { realpath, stat } from "node:fs/promises";
import { join, sep } from "node:path";

export type Resolved =
  | { path: string; size: number; mtimeMs: number; ctimeMs: number; ino: number }
  | { refused: string }
  | { missing: string };

/** Is `child` inside `root` (both absolute, resolved)? */
export function inside(root: string, child: string): boolean {
  return child === root || child.startsWith(root.endsWith(sep) ? root : root + sep);
}

/** Resolve `name` (slash-separated, as sent) under the already-resolved `root` to a regular file. */
export async function resolveServed(root: string, name: string): Promise<Resolved> {
  if (name === "" || name.startsWith("/")) return { refused: `'${name}' is not a relative file name` };
  const parts = name.split("/").filter(Boolean);
  if (
    parts.length === 0 ||
    parts.some((p) => p === ".." || p === "." || p.startsWith(".") || p.includes("\0") || p.includes("\\"))
  ) {
    return { refused: `'${name}' leaves the served directory or names a hidden file` };
  }
  let real: string;
  try {
    real = await realpath(join(root, ...parts));
  } catch {
    return { missing: `'${name}' not found` };
  }
  if (!inside(root, real)) return { refused: `'${name}' is a link out of the served directory` };
  const st = await stat(real);
  if (!st.isFile()) return { missing: `'${name}' is not a file` };
  return { path: real, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino };
}
