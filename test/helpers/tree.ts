import { createHash } from "node:crypto";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { readXattrs } from "../../src/tar/index.js";

/** What a cross-check compares of one filesystem object. */
export interface Node {
  type: string;
  mode: string;
  owner: string;
  content?: string;
  link?: string;
  rdev?: number;
  mtime?: number;
  xattrs?: string;
}

export interface Snapshot {
  nodes: Map<string, Node>;
  /** Sorted groups of paths that share an inode (regular files with nlink > 1). */
  hardlinkGroups: string[][];
}

/** Describe every object under `dir` for an entry-by-entry comparison. */
export async function snapshotTree(dir: string, opts: { mtimes?: boolean } = {}): Promise<Snapshot> {
  const nodes = new Map<string, Node>();
  const inodes = new Map<number, string[]>();
  const xattrs = await readXattrs(dir);
  const walk = async (rel: string): Promise<void> => {
    for (const name of (await readdir(rel ? join(dir, rel) : dir)).sort()) {
      const p = rel ? `${rel}/${name}` : name;
      const abs = join(dir, p);
      const st = await lstat(abs);
      const n: Node = {
        type: st.isDirectory()
          ? "dir"
          : st.isSymbolicLink()
            ? "symlink"
            : st.isFile()
              ? "file"
              : st.isCharacterDevice()
                ? "chardev"
                : st.isBlockDevice()
                  ? "blockdev"
                  : st.isFIFO()
                    ? "fifo"
                    : "other",
        mode: (st.mode & 0o7777).toString(8),
        owner: `${st.uid}:${st.gid}`,
      };
      const x = xattrs.get(resolve(abs));
      if (x?.size)
        n.xattrs = [...x]
          .map(([k, v]) => `${k}=${v.toString("hex")}`)
          .sort()
          .join(",");
      if (n.type === "file") {
        n.content = createHash("sha256")
          .update(await readFile(abs))
          .digest("hex");
        if (opts.mtimes) n.mtime = Math.floor(st.mtimeMs / 1000);
        if (st.nlink > 1) inodes.set(st.ino, [...(inodes.get(st.ino) ?? []), p]);
      }
      if (n.type === "symlink") n.link = await readlink(abs);
      if (n.type === "chardev" || n.type === "blockdev") n.rdev = st.rdev;
      nodes.set(p, n);
      if (n.type === "dir") await walk(p);
    }
  };
  await walk("");
  const hardlinkGroups = [...inodes.values()]
    .filter((g) => g.length > 1)
    .map((g) => g.sort())
    .sort();
  return { nodes, hardlinkGroups };
}

/** Human-readable differences between two snapshots (empty when equal). */
export function diffSnapshots(a: Snapshot, b: Snapshot, names = ["ours", "theirs"], limit = 20): string[] {
  const out: string[] = [];
  for (const [p, na] of a.nodes) {
    const nb = b.nodes.get(p);
    if (!nb) out.push(`${p}: only in ${names[0]}`);
    else if (JSON.stringify(na) !== JSON.stringify(nb))
      out.push(`${p}: ${names[0]} ${JSON.stringify(na)} vs ${names[1]} ${JSON.stringify(nb)}`);
    if (out.length >= limit) return out;
  }
  for (const p of b.nodes.keys()) {
    if (!a.nodes.has(p)) out.push(`${p}: only in ${names[1]}`);
    if (out.length >= limit) return out;
  }
  if (JSON.stringify(a.hardlinkGroups) !== JSON.stringify(b.hardlinkGroups))
    out.push("hardlink groups differ");
  return out;
}
