import { lstatSync, readlinkSync, realpathSync } from "node:fs";
import { join } from "node:path";
import { KairosError } from "../sys/index.js";

/** A path tried to leave the root directory it must stay in. */
export class PathEscapeError extends KairosError {
  override readonly name = "PathEscapeError";
}

const MAX_LINKS = 40;

/**
 * Resolve `path` inside `root` the way a chroot would see it, without chrooting: absolute
 * symlink targets are taken relative to `root`, and any `..` (in the path or a symlink target)
 * that would climb above `root` is refused. With `followLast: false` a final symlink is not
 * followed (so it can be replaced or removed). Missing components are fine: the result is where
 * the file would be created.
 */
export function resolveInRoot(root: string, path: string, opts: { followLast?: boolean } = {}): string {
  const realRoot = realpathSync(root);
  if (path.split("/").includes("..")) {
    throw new PathEscapeError(
      `refusing path ${JSON.stringify(path)}: it contains ".."`,
      "use a plain absolute path",
    );
  }
  const followLast = opts.followLast ?? true;
  const todo = path.split("/").filter((c) => c !== "" && c !== ".");
  const cur: string[] = [];
  let links = 0;
  let exists = true;
  while (todo.length > 0) {
    const comp = todo.shift()!;
    if (comp === "..") {
      if (cur.length === 0) {
        throw new PathEscapeError(
          `refusing path ${JSON.stringify(path)}: a symlink in it points outside ${root}`,
        );
      }
      cur.pop();
      continue;
    }
    cur.push(comp);
    if (!exists) continue;
    const isLast = todo.length === 0;
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(join(realRoot, ...cur));
    } catch {
      exists = false;
      continue;
    }
    if (!st.isSymbolicLink() || (isLast && !followLast)) continue;
    if (++links > MAX_LINKS) throw new PathEscapeError(`too many symlinks resolving ${path} in ${root}`);
    const target = readlinkSync(join(realRoot, ...cur));
    cur.pop();
    if (target.startsWith("/")) cur.length = 0;
    todo.unshift(...target.split("/").filter((c) => c !== "" && c !== "."));
  }
  return join(realRoot, ...cur);
}
