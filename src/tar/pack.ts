import { createReadStream } from "node:fs";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../sys/run.js";
import { findTool } from "../sys/tools.js";
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

/** All extended attributes under `dir`, by absolute path, values byte-exact. */
export async function readXattrs(dir: string): Promise<Map<string, Map<string, Buffer>>> {
  const out = new Map<string, Map<string, Buffer>>();
  if (!findTool("getfattr")) return out;
  const { stdout } = await run("getfattr", [
    "-R",
    "-P",
    "-d",
    "-m",
    "-",
    "-e",
    "hex",
    "--absolute-names",
    dir,
  ]).catch((err: unknown) => {
    // getfattr exits 1 when some file has no readable attributes; its output is still complete.
    const e = err as { stderrTail?: string };
    if (e.stderrTail !== undefined) return { stdout: "" };
    throw err;
  });
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
        xattrs: xattrs.get(full),
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
