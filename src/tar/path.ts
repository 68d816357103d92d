import { KairosError } from "../sys/errors.js";

/** Thrown for an archive entry that would land outside the extraction root. */
export class UnsafePathError extends KairosError {
  override readonly name = "UnsafePathError";
}

/**
 * Normalize an archive member name to a root-relative path: strips "./" prefixes and
 * trailing slashes, collapses "//" and "." components. The archive root itself is ".".
 * Absolute names and names with a ".." component are refused: they are how a hostile
 * archive writes outside its target.
 */
export function normalizeEntryPath(raw: string, what = "entry"): string {
  if (raw.includes("\0")) throw new UnsafePathError(`tar ${what} ${JSON.stringify(raw)} contains a NUL byte`);
  if (raw.startsWith("/")) {
    throw new UnsafePathError(
      `tar ${what} ${JSON.stringify(raw)} is an absolute path`,
      "layers must use paths relative to the image root; refusing to write outside the target",
    );
  }
  const parts: string[] = [];
  for (const part of raw.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      throw new UnsafePathError(
        `tar ${what} ${JSON.stringify(raw)} contains a ".." component`,
        "refusing an entry that climbs out of the target directory",
      );
    }
    parts.push(part);
  }
  return parts.length === 0 ? "." : parts.join("/");
}

/** Parent of a normalized path ("." for top-level names). */
export function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "." : path.slice(0, i);
}

/** Last component of a normalized path. */
export function baseOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? path : path.slice(i + 1);
}

/** Join a normalized parent and a name. */
export function joinPath(parent: string, name: string): string {
  return parent === "." ? name : `${parent}/${name}`;
}

/** The strict ancestors of a normalized path, nearest first ("a/b/c" → "a/b", "a"). */
export function* ancestorsOf(path: string): Generator<string> {
  let p = path;
  for (;;) {
    const i = p.lastIndexOf("/");
    if (i < 0) return;
    p = p.slice(0, i);
    yield p;
  }
}

/**
 * Resolve a symlink's target, relative to the directory that holds the link, inside a root
 * (chroot semantics for absolute targets). Returns the normalized path, or undefined when
 * the target climbs above the root.
 */
export function resolveLinkTarget(linkDir: string, target: string): string | undefined {
  const parts = target.startsWith("/") || linkDir === "." ? [] : linkDir.split("/");
  for (const part of target.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.length === 0) return undefined;
      parts.pop();
    } else parts.push(part);
  }
  return parts.length === 0 ? "." : parts.join("/");
}
