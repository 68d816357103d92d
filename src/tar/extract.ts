import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  futimesSync,
  lchownSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  type Stats,
  symlinkSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { chmod, lutimes, mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../sys/run.js";
import { requireTool } from "../sys/tools.js";
import { ancestorsOf, joinPath, UnsafePathError } from "./path.js";
import type { TarEntry } from "./types.js";

export interface DirectoryWriterOptions {
  /** Set owners from the archive (default: when running as root). */
  keepOwners?: boolean;
  /** Device nodes need root: "create" fails without it, "skip" counts and skips them (default: create as root, else skip). */
  devices?: "create" | "skip";
  /** Write extended attributes (default true; needs the `setfattr` tool when any are present). */
  xattrs?: boolean;
}

interface DeferredDir {
  abs: string;
  mode: number;
  mtime: number;
}

/** Escape a path the way getfattr prints it, so that `setfattr --restore` reads it back. */
function escapeForRestore(path: string): string {
  let out = "";
  for (const byte of Buffer.from(path, "utf8")) {
    out +=
      byte <= 0x20 || byte === 0x5c || byte >= 0x7f
        ? `\\${byte.toString(8).padStart(3, "0")}`
        : String.fromCharCode(byte);
  }
  return out;
}

const isRoot = () => process.getuid?.() === 0;

function lstatOrUndefined(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw e;
  }
}

/**
 * Writes tar entries into a directory and nothing outside it. Each parent of an entry must be
 * a real directory inside the root: a symlink on the way (planted by an earlier entry or
 * layer) is refused, never followed. Existing files are unlinked before being replaced, so a
 * hardlinked sibling never changes. Directory modes and times are applied at the end (a
 * read-only directory would block its own children otherwise), xattrs too (after chown,
 * which clears security.capability).
 */
export class DirectoryWriter {
  private readonly verifiedDirs = new Set<string>(["."]);
  private readonly deferredDirs = new Map<string, DeferredDir>();
  private xattrDump: string[] = [];
  private writtenThisLayer = new Set<string>();
  private parentsWrittenThisLayer = new Set<string>();
  /** Paths this writer created; when the target started empty, nothing else can exist. */
  private readonly created = new Set<string>();
  private startedEmpty = false;
  bytesWritten = 0;
  skippedDevices = 0;

  private constructor(
    private readonly root: string,
    private readonly keepOwners: boolean,
    private readonly devices: "create" | "skip",
    private readonly xattrs: boolean,
  ) {}

  /** Open (creating it if needed) the target directory. */
  static async open(root: string, opts: DirectoryWriterOptions = {}): Promise<DirectoryWriter> {
    await mkdir(root, { recursive: true });
    const root_ = isRoot();
    const w = new DirectoryWriter(
      root,
      opts.keepOwners ?? root_,
      opts.devices ?? (root_ ? "create" : "skip"),
      opts.xattrs ?? true,
    );
    // Nothing this writer did not create can exist in an empty target: no lstat per entry
    // and per parent to find out (a stranger writing into the target meanwhile still makes
    // O_EXCL, mkdir and symlink fail, never succeed wrongly).
    w.startedEmpty = readdirSync(root).length === 0;
    return w;
  }

  /** Start applying a new layer: whiteouts only remove what older layers wrote. */
  startLayer(): void {
    this.writtenThisLayer = new Set();
    this.parentsWrittenThisLayer = new Set();
  }

  private abs(path: string): string {
    return path === "." ? this.root : join(this.root, path);
  }

  /** Make sure every ancestor of `path` is a real directory under the root, creating missing ones. */
  private async ensureParents(path: string, label: string): Promise<void> {
    const ancestors = [...ancestorsOf(path)].reverse();
    for (const dir of ancestors) {
      if (this.verifiedDirs.has(dir)) continue;
      const st = this.mayExist(dir) ? lstatOrUndefined(this.abs(dir)) : undefined;
      if (!st) {
        mkdirSync(this.abs(dir), { mode: 0o755 });
        this.created.add(dir);
      } else if (st.isSymbolicLink()) {
        throw new UnsafePathError(
          `${label}: ${path} would be written through the symlink ${dir}`,
          "refusing to follow a symlink planted by an earlier entry or layer",
        );
      } else if (!st.isDirectory()) {
        throw new UnsafePathError(`${label}: ${path} needs ${dir} to be a directory, but it is a file`);
      }
      this.verifiedDirs.add(dir);
    }
  }

  /** Forget verified directories at or under `path` (after it was removed or replaced). */
  private forget(path: string): void {
    const prefix = `${path}/`;
    for (const d of this.verifiedDirs) if (d === path || d.startsWith(prefix)) this.verifiedDirs.delete(d);
    for (const d of this.deferredDirs.keys())
      if (d === path || d.startsWith(prefix)) this.deferredDirs.delete(d);
  }

  private mayExist(path: string): boolean {
    return !this.startedEmpty || this.created.has(path);
  }

  private async removeExisting(path: string, keepDir: boolean): Promise<"dir" | "none"> {
    const st = this.mayExist(path) ? lstatOrUndefined(this.abs(path)) : undefined;
    if (!st) return "none";
    if (st.isDirectory()) {
      if (keepDir) return "dir";
      await rm(this.abs(path), { recursive: true, force: true });
      // Only directories are remembered as verified: replacing a file needs no scan of them.
      this.forget(path);
    } else unlinkSync(this.abs(path));
    return "none";
  }

  private noteWritten(path: string): void {
    this.writtenThisLayer.add(path);
    for (const a of ancestorsOf(path)) {
      if (this.parentsWrittenThisLayer.has(a)) break;
      this.parentsWrittenThisLayer.add(a);
    }
  }

  /** Write one entry. `label` names the layer in errors. */
  async apply(e: TarEntry, label = "archive"): Promise<void> {
    if (e.path === ".") {
      this.deferredDirs.set(".", { abs: this.root, mode: e.mode, mtime: e.mtime });
      this.setOwner(this.root, e);
      return;
    }
    await this.ensureParents(e.path, label);
    const abs = this.abs(e.path);
    this.noteWritten(e.path);
    const existing = await this.removeExisting(e.path, e.type === "directory");
    switch (e.type) {
      case "directory":
        if (existing === "none") mkdirSync(abs, { mode: 0o700 });
        this.created.add(e.path);
        this.verifiedDirs.add(e.path);
        this.deferredDirs.set(e.path, { abs, mode: e.mode, mtime: e.mtime });
        this.setOwner(abs, e);
        break;
      case "file": {
        // Synchronous fd calls: a rootfs is tens of thousands of small files, and a
        // thread-pool round trip per metadata call costs more than the call itself.
        const fd = openSync(
          abs,
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
          0o600,
        );
        try {
          for await (const chunk of e.body) {
            for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off);
            this.bytesWritten += chunk.length;
          }
          if (this.keepOwners) fchownSync(fd, e.uid, e.gid);
          fchmodSync(fd, e.mode);
          futimesSync(fd, e.mtime, e.mtime);
        } finally {
          closeSync(fd);
        }
        this.created.add(e.path);
        break;
      }
      case "symlink":
        // Synchronous, as for files: thousands of links in a rootfs, three calls each.
        symlinkSync(e.linkname!, abs);
        this.created.add(e.path);
        this.setOwner(abs, e);
        lutimesSync(abs, e.mtime, e.mtime);
        break;
      case "hardlink": {
        const target = e.linkname!;
        await this.ensureParents(target, label);
        const st = lstatOrUndefined(this.abs(target));
        if (!st || st.isDirectory()) {
          throw new UnsafePathError(
            `${label}: hardlink ${e.path} points to ${target}, which ${st ? "is a directory" : "does not exist"}`,
          );
        }
        linkSync(this.abs(target), abs);
        this.created.add(e.path);
        break;
      }
      case "chardev":
      case "blockdev":
      case "fifo": {
        if (e.type !== "fifo" && this.devices === "skip") {
          this.skippedDevices++;
          return;
        }
        const kind =
          e.type === "fifo"
            ? ["p"]
            : [e.type === "chardev" ? "c" : "b", String(e.devmajor ?? 0), String(e.devminor ?? 0)];
        await run("mknod", ["-m", (e.mode & 0o7777).toString(8), abs, ...kind]);
        this.created.add(e.path);
        this.setOwner(abs, e);
        await chmod(abs, e.mode);
        await lutimes(abs, e.mtime, e.mtime);
        break;
      }
    }
    if (e.xattrs?.size && this.xattrs) {
      const lines = [`# file: ${escapeForRestore(abs)}`];
      for (const [k, v] of e.xattrs) lines.push(`${k}=0x${v.toString("hex")}`);
      this.xattrDump.push(`${lines.join("\n")}\n`);
    }
  }

  private setOwner(abs: string, e: TarEntry): void {
    if (this.keepOwners) lchownSync(abs, e.uid, e.gid);
  }

  /** A whiteout: remove `path` as an older layer left it (not if this layer wrote it). */
  async removeLower(path: string): Promise<void> {
    if (this.writtenThisLayer.has(path)) return;
    await this.ensureParents(path, "whiteout");
    await this.removeExisting(path, false);
  }

  /** An opaque directory: drop everything older layers put under `dir`, keep this layer's entries. */
  async clearLowerContent(dir: string): Promise<void> {
    await this.ensureParents(joinPath(dir, "x"), "opaque whiteout");
    const walk = async (rel: string): Promise<void> => {
      const names = await readdir(this.abs(rel)).catch(() => [] as string[]);
      for (const name of names) {
        const child = joinPath(rel, name);
        if (this.parentsWrittenThisLayer.has(child)) await walk(child);
        else if (!this.writtenThisLayer.has(child)) await this.removeExisting(child, false);
        else if (this.deferredDirs.has(child)) await walk(child);
      }
    };
    await walk(dir);
  }

  /** Apply deferred directory modes and times, then extended attributes. */
  async finish(): Promise<void> {
    const dirs = [...this.deferredDirs.entries()].sort((a, b) => b[0].length - a[0].length);
    for (const [, d] of dirs) {
      await chmod(d.abs, d.mode);
      await lutimes(d.abs, d.mtime, d.mtime);
    }
    if (this.xattrDump.length) {
      requireTool("setfattr");
      await run("setfattr", ["-h", "--restore=-"], { input: `${this.xattrDump.join("\n")}\n` });
      this.xattrDump = [];
    }
  }
}
