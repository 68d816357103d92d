import { lstat as fsLstat, readFile as fsReadFile, readlink as fsReadlink, readdir } from "node:fs/promises";
import { join } from "node:path";
import { PathTrie } from "../tar/path-trie.js";
import type { EntryType, TarEntry } from "../tar/types.js";

/** What the factory needs to know about one path of a root filesystem. */
export interface RootfsStat {
  type: EntryType;
  /** Permission bits (mask 0o7777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Symlink target as stored, or hardlink target (absolute path inside the rootfs). */
  linkname?: string;
}

/**
 * A read-only look at a root filesystem, wherever it lives (a directory, a tar stream).
 * Paths are absolute inside the rootfs ("/etc/os-release"). `lstat`/`readlink` look at the
 * path itself; `readFile`, `list` and `exists` follow symlinks the way a chroot would: an
 * absolute link target or `..` never leaves the rootfs.
 */
export interface RootfsView {
  /** Does the path exist (following symlinks)? */
  exists(path: string): Promise<boolean>;
  /** Metadata of the path itself (not following a final symlink), or undefined. */
  lstat(path: string): Promise<RootfsStat | undefined>;
  /** Contents of a regular file (following symlinks), or undefined when absent or not kept. */
  readFile(path: string): Promise<Buffer | undefined>;
  /** Target of a symlink, or undefined when the path is not a symlink. */
  readlink(path: string): Promise<string | undefined>;
  /** Names in a directory (following symlinks), sorted; empty when absent. */
  list(path: string): Promise<string[]>;
  /** The path with every symlink resolved inside the rootfs, or undefined on a dangling link/loop. */
  realpath(path: string): Promise<string | undefined>;
}

/** Split an absolute or relative in-rootfs path into clean components. */
export function components(path: string): string[] {
  const out: string[] = [];
  for (const c of path.split("/")) {
    if (c === "" || c === ".") continue;
    if (c === "..") out.pop();
    else out.push(c);
  }
  return out;
}

export function normalize(path: string): string {
  return `/${components(path).join("/")}`;
}

const MAX_LINKS = 40;

/**
 * Resolve `path` inside a rootfs given only lstat/readlink, like the kernel does under chroot:
 * `..` at the root stays at the root, absolute targets restart at the rootfs root.
 * `followLast` false leaves a final symlink unresolved (lstat semantics).
 */
async function resolveIn(
  lstat: (p: string) => Promise<RootfsStat | undefined>,
  path: string,
  followLast: boolean,
): Promise<string | undefined> {
  let pending = components(path);
  const done: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    const candidate = `/${[...done, name].join("/")}`;
    const st = await lstat(candidate);
    const isLast = pending.length === 0;
    if (st?.type === "symlink" && (followLast || !isLast)) {
      if (++links > MAX_LINKS) return undefined;
      const target = st.linkname ?? "";
      const rest = pending;
      if (target.startsWith("/")) done.length = 0;
      pending = [...target.split("/"), ...rest].filter((c) => c !== "" && c !== ".");
      // Process ".." from the link target against `done` below.
      while (pending[0] === "..") {
        pending.shift();
        done.pop();
      }
      continue;
    }
    if (st === undefined && !isLast) return undefined;
    done.push(name);
    while (pending[0] === "..") {
      pending.shift();
      done.pop();
    }
  }
  return `/${done.join("/")}`;
}

/** Shared symlink-following logic over the two primitive lookups. */
abstract class BaseView implements RootfsView {
  protected abstract rawLstat(path: string): Promise<RootfsStat | undefined>;
  protected abstract rawRead(path: string, st: RootfsStat): Promise<Buffer | undefined>;
  protected abstract rawList(path: string): Promise<string[]>;

  async lstat(path: string): Promise<RootfsStat | undefined> {
    const parent = await resolveIn((p) => this.rawLstat(p), path, false);
    return parent === undefined ? undefined : this.rawLstat(parent);
  }
  async realpath(path: string): Promise<string | undefined> {
    const p = await resolveIn((q) => this.rawLstat(q), path, true);
    if (p === undefined) return undefined;
    return (await this.rawLstat(p)) || p === "/" ? p : undefined;
  }
  async exists(path: string): Promise<boolean> {
    return (await this.realpath(path)) !== undefined;
  }
  async readlink(path: string): Promise<string | undefined> {
    const st = await this.lstat(path);
    return st?.type === "symlink" ? st.linkname : undefined;
  }
  async readFile(path: string): Promise<Buffer | undefined> {
    const p = await this.realpath(path);
    if (p === undefined) return undefined;
    let st = await this.rawLstat(p);
    if (st?.type === "hardlink" && st.linkname) {
      const target = st.linkname;
      st = await this.rawLstat(target);
      return st?.type === "file" ? this.rawRead(target, st) : undefined;
    }
    return st?.type === "file" ? this.rawRead(p, st) : undefined;
  }
  async list(path: string): Promise<string[]> {
    const p = await this.realpath(path);
    if (p === undefined) return [];
    const st = p === "/" ? undefined : await this.rawLstat(p);
    if (p !== "/" && st?.type !== "directory") return [];
    return (await this.rawList(p)).sort();
  }
}

/** A rootfs that is an extracted directory on this machine. */
export class DirectoryView extends BaseView {
  constructor(readonly root: string) {
    super();
  }
  /** Host path of an in-rootfs path that has been resolved already (no symlinks to follow). */
  hostPath(resolved: string): string {
    return join(this.root, ...components(resolved));
  }
  protected async rawLstat(path: string): Promise<RootfsStat | undefined> {
    try {
      const st = await fsLstat(this.hostPath(path));
      const type: EntryType = st.isFile()
        ? "file"
        : st.isDirectory()
          ? "directory"
          : st.isSymbolicLink()
            ? "symlink"
            : st.isCharacterDevice()
              ? "chardev"
              : st.isBlockDevice()
                ? "blockdev"
                : "fifo";
      const out: RootfsStat = { type, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size };
      if (type === "symlink") out.linkname = await fsReadlink(this.hostPath(path));
      return out;
    } catch {
      return undefined;
    }
  }
  protected async rawRead(path: string): Promise<Buffer | undefined> {
    try {
      return await fsReadFile(this.hostPath(path));
    } catch {
      return undefined;
    }
  }
  protected async rawList(path: string): Promise<string[]> {
    try {
      return await readdir(this.hostPath(path));
    } catch {
      return [];
    }
  }
}

/** Decide whether the contents of a tar entry are kept in memory by TarView. */
export type KeepPredicate = (path: string, size: number) => boolean;

/** Small files doctor and the initramfs builder read: os-release, kernel module indexes. */
export const keepFactoryFiles: KeepPredicate = (path, size) => {
  if (size > 16 * 1024 * 1024) return false;
  return (
    /^\/(etc|usr\/lib)\/(os-release|kairos-release)$/.test(path) ||
    /^\/(usr\/)?lib\/modules\/[^/]+\/modules\.(dep|alias|builtin|order|softdep|builtin\.modinfo)$/.test(
      path,
    ) ||
    /^\/(s?bin|usr\/s?bin)\/init$/.test(path)
  );
};

/** Entry types by code (the low bits of a node's value); code 0 is a node not recorded. */
const TYPES: readonly (EntryType | undefined)[] = [
  undefined,
  "file",
  "hardlink",
  "symlink",
  "chardev",
  "blockdev",
  "directory",
  "fifo",
];
const TYPE_BITS = 3;
const CODE = new Map(TYPES.flatMap((t, i) => (t ? [[t, i] as const] : [])));
const DIRECTORY = CODE.get("directory")!;
/** What an implied parent directory looks like (owned by root). */
const IMPLIED_DIR_MODE = 0o755;

/**
 * A rootfs known from a stream of tar entries (e.g. a flattened image): metadata of every path
 * and the contents of the files `keep` selects. Later entries replace earlier ones, as in a
 * flattened stream.
 *
 * An image can hold 100 000 files, so the paths live in a PathTrie (a few bytes a path, names
 * interned) and a path's stat is spread over typed arrays by trie node: type code and mode in
 * the node's value, uid, gid and size beside it. Link targets and kept contents are maps by
 * node (a few thousand links, a few files). The Map of path strings to stat objects and Set of
 * names per directory this replaces held ~220 bytes a path: 120 000 synthetic paths took 33.5
 * MiB of live heap that way, 7.4 MiB this way (docs/benchmarks.md, issue #13).
 */
export class TarView extends BaseView {
  /** Paths without their leading "/"; the root itself is no node (it is always a directory). */
  private readonly trie = new PathTrie();
  private uids = new Uint32Array(1024);
  private gids = new Uint32Array(1024);
  /** Float64: a file can be larger than 4 GiB. */
  private sizes = new Float64Array(1024);
  private readonly links = new Map<number, string>();
  private readonly contents = new Map<number, Buffer>();

  static async fromEntries(
    entries: AsyncIterable<TarEntry>,
    keep: KeepPredicate = keepFactoryFiles,
  ): Promise<TarView> {
    const view = new TarView();
    for await (const e of entries) {
      const path = normalize(e.path);
      const st: RootfsStat = { type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size };
      if (e.linkname !== undefined) st.linkname = e.linkname;
      let content: Buffer | undefined;
      if (e.type === "file" && keep(path, e.size)) {
        const chunks: Buffer[] = [];
        for await (const c of e.body) chunks.push(c);
        content = Buffer.concat(chunks);
      } else {
        for await (const _ of e.body) {
          // drain
        }
      }
      view.record(path.slice(1), st, content);
    }
    return view;
  }

  /**
   * Add or replace a path (parents are implied as directories). A hardlink's target is an
   * in-rootfs path (normalized here). Replacing a path drops the contents kept for it unless
   * `content` is given.
   */
  add(path: string, st: RootfsStat, content?: Buffer): void {
    this.record(normalize(path).slice(1), st, content);
  }

  /** `add` of a path already normalized, without its leading "/". */
  private record(key: string, st: RootfsStat, content: Buffer | undefined): void {
    if (key === "") return;
    const code = CODE.get(st.type);
    if (code === undefined) throw new Error(`TarView: unknown entry type ${st.type} for /${key}`);
    const trie = this.trie;
    const node = trie.add(key);
    if (trie.size >= this.sizes.length) this.grow(trie.size + 1);
    // Ancestors first seen now are implied directories (an entry of their own replaces that).
    for (let k = 0; k < trie.ancestorCount; k++) {
      const a = trie.ancestor(k);
      if (trie.value(a) !== 0) break;
      trie.setValue(a, DIRECTORY | (IMPLIED_DIR_MODE << TYPE_BITS));
      this.uids[a] = 0;
      this.gids[a] = 0;
      this.sizes[a] = 0;
    }
    trie.setValue(node, code | ((st.mode & 0o7777) << TYPE_BITS));
    this.uids[node] = st.uid;
    this.gids[node] = st.gid;
    this.sizes[node] = st.size;
    if (st.linkname === undefined) this.links.delete(node);
    else this.links.set(node, st.type === "hardlink" ? normalize(st.linkname) : st.linkname);
    if (content) this.contents.set(node, content);
    else this.contents.delete(node);
  }

  private grow(min: number): void {
    let n = this.sizes.length;
    while (n < min) n *= 2;
    const widen = <T extends Uint32Array | Float64Array>(a: T, b: T): T => {
      b.set(a);
      return b;
    };
    this.uids = widen(this.uids, new Uint32Array(n));
    this.gids = widen(this.gids, new Uint32Array(n));
    this.sizes = widen(this.sizes, new Float64Array(n));
  }

  /** The node of a normalized absolute path, 0 when absent (or the root). */
  private nodeOf(path: string): number {
    return path.length > 1 ? this.trie.find(path.slice(1)) : 0;
  }

  protected async rawLstat(path: string): Promise<RootfsStat | undefined> {
    const node = this.nodeOf(path);
    const value = node === 0 ? 0 : this.trie.value(node);
    const type = TYPES[value & ((1 << TYPE_BITS) - 1)];
    if (type === undefined) return undefined;
    const st: RootfsStat = {
      type,
      mode: value >>> TYPE_BITS,
      uid: this.uids[node]!,
      gid: this.gids[node]!,
      size: this.sizes[node]!,
    };
    const link = this.links.get(node);
    if (link !== undefined) st.linkname = link;
    return st;
  }
  protected async rawRead(path: string): Promise<Buffer | undefined> {
    const node = this.nodeOf(path);
    return node === 0 ? undefined : this.contents.get(node);
  }
  protected async rawList(path: string): Promise<string[]> {
    const node = this.nodeOf(path);
    if (node === 0 && path !== "/") return [];
    return this.trie.children(node).map((n) => this.trie.nameOf(n));
  }
}
