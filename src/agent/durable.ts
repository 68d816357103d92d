import { constants } from "node:fs";
import { open, rename, rm, symlink, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

/** fsync a file or a directory by path (a directory's fsync makes its renames and new names durable). */
export async function fsyncPath(path: string): Promise<void> {
  const fh = await open(path, constants.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replace `path` with `content` so that a crash leaves either the old or the new file, never a
 * mix: write a temp file beside it, fsync it, rename it over `path`, fsync the directory.
 */
export async function writeFileAtomic(
  path: string,
  content: Uint8Array | string,
  mode = 0o644,
): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.tmp-${process.pid}`);
  try {
    await writeFile(tmp, content, { mode });
    await fsyncPath(tmp);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  await fsyncPath(dir);
}

/**
 * Point the symlink `path` at `target` atomically: a new symlink under a temp name, renamed over
 * the old one (rename(2) replaces it in one step), then the directory fsynced.
 */
export async function replaceSymlink(path: string, target: string): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `${basename(path)}.tmp`);
  await rm(tmp, { force: true });
  await symlink(target, tmp);
  await rename(tmp, path);
  await fsyncPath(dir);
}
