import { createReadStream } from "node:fs";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { ToolFailedError } from "../sys/errors.js";
import { start } from "../sys/run.js";
import { requireTool } from "../sys/tools.js";
import type { EntryType, TarHeader } from "./types.js";
import type { WriteEntry } from "./writer.js";

export interface PackOptions {
  /** Clamp every mtime to at most this (reproducible builds, SOURCE_DATE_EPOCH). */
  sourceDateEpoch?: number;
  /** Read extended attributes (one `getfattr` run over the tree). Default true. */
  xattrs?: boolean;
  /** Skip these root-relative paths (and everything under them). */
  exclude?: (path: string) => boolean;
}

/** Undo getfattr's octal escapes ("\012") in file names. */
function unescapeGetfattr(s: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    if (s[i] === "\\" && /^[0-7]{3}$/.test(s.slice(i + 1, i + 4))) {
      bytes.push(Number.parseInt(s.slice(i + 1, i + 4), 8));
      i += 3;
    } else bytes.push(...Buffer.from(s[i]!, "utf8"));
  }
  return Buffer.from(bytes).toString("utf8");
}

/**
 * Parse `getfattr -d -e hex` output: `# file: PATH` then `name=0xHEX` lines. Values are
 * byte-exact (hex); the text forms getfattr uses without -e hex are understood too.
 */
export function parseGetfattr(stdout: string): Map<string, Map<string, Buffer>> {
  const out = new Map<string, Map<string, Buffer>>();
  let current: Map<string, Buffer> | undefined;
  for (const line of stdout.split("\n")) {
    if (line.startsWith("# file: ")) {
      current = new Map();
      out.set(unescapeGetfattr(line.slice(8)), current);
    } else if (current && line.includes("=")) {
      const eq = line.indexOf("=");
      const value = line.slice(eq + 1);
      current.set(
        line.slice(0, eq),
        value.startsWith("0x")
          ? Buffer.from(value.slice(2), "hex")
          : Buffer.from(value.replace(/^"|"$/g, "")),
      );
    }
  }
  return out;
}

/**
 * All extended attributes under `dir`, by absolute path, values byte-exact: one `getfattr` run
 * over the tree. `-h` reads a symlink's own attributes (without it getfattr follows the link
 * and fails on a dangling one), `-P` never walks through a symlink to a directory. getfattr
 * exits 1 when some entry could not be read (it vanished, or is unreadable): what it printed for
 * the others is complete, and is kept. Only a getfattr that cannot run (missing: the Debian
 * package `attr`) or dies is an error, never a silent loss of every attribute.
 */
export async function readXattrs(dir: string): Promise<Map<string, Map<string, Buffer>>> {
  const abs = resolve(dir);
  const p = start(requireTool("getfattr"), [
    "-R",
    "-h",
    "-P",
    "-d",
    "-m",
    "-",
    "-e",
    "hex",
    "--absolute-names",
    abs,
  ]);
  const out: Buffer[] = [];
  p.stdout.on("data", (c: Buffer) => out.push(c));
  p.stdin.end();
  try {
    await p.done;
  } catch (err) {
    if (!(err instanceof ToolFailedError) || err.exitCode !== 1) throw err;
  }
  return parseGetfattr(Buffer.concat(out).toString("utf8"));
}

function deviceNumbers(rdev: number): { devmajor: number; devminor: number } {
  return { devmajor: (rdev >>> 8) & 0xfff, devminor: (rdev & 0xff) | ((rdev >>> 12) & 0xfff00) };
}

/**
 * Walk a directory (sorted, depth first) and yield tar entries for everything under it:
 * owners, modes, mtimes, symlinks, hardlink groups, device nodes, fifos and xattrs.
 * The directory itself is not an entry (as in `FROM scratch` + `ADD . /`).
 */
export async function* packDirectory(dir: string, opts: PackOptions = {}): AsyncGenerator<WriteEntry> {
  const xattrs = opts.xattrs === false ? new Map() : await readXattrs(dir);
  // readXattrs keys by the absolute path getfattr printed.
  const root = resolve(dir);
  const inodes = new Map<string, string>();
  const clamp = (t: number) => (opts.sourceDateEpoch !== undefined ? Math.min(t, opts.sourceDateEpoch) : t);

  async function* walk(rel: string): AsyncGenerator<WriteEntry> {
    const abs = rel === "." ? dir : join(dir, rel);
    const names = (await readdir(abs)).sort();
    for (const name of names) {
      const path = rel === "." ? name : `${rel}/${name}`;
      if (opts.exclude?.(path)) continue;
      const full = join(abs, name);
      const st = await lstat(full);
      let type: EntryType;
      if (st.isDirectory()) type = "directory";
      else if (st.isSymbolicLink()) type = "symlink";
      else if (st.isFile()) type = "file";
      else if (st.isCharacterDevice()) type = "chardev";
      else if (st.isBlockDevice()) type = "blockdev";
      else if (st.isFIFO()) type = "fifo";
      else continue; // sockets do not belong in images
      const header: TarHeader = {
        path,
        type,
        mode: st.mode & 0o7777,
        uid: st.uid,
        gid: st.gid,
        size: 0,
        mtime: clamp(Math.floor(st.mtimeMs / 1000)),
        xattrs: xattrs.get(join(root, path)),
      };
      if (type === "symlink") header.linkname = await readlink(full);
      if (type === "chardev" || type === "blockdev") Object.assign(header, deviceNumbers(st.rdev));
      if (type === "file" && st.nlink > 1) {
        const key = `${st.dev}:${st.ino}`;
        const first = inodes.get(key);
        if (first !== undefined) {
          yield { header: { ...header, type: "hardlink", linkname: first } };
          continue;
        }
        inodes.set(key, path);
      }
      if (type === "file") {
        header.size = st.size;
        yield {
          header,
          body:
            st.size <= 1 << 20 ? await readFile(full) : createReadStream(full, { highWaterMark: 1 << 20 }),
        };
        continue;
      }
      yield { header };
      if (type === "directory") yield* walk(path);
    }
  }
  yield* walk(".");
}
