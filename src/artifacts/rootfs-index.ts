import { copyFile, type FileHandle, mkdir, open, readFile } from "node:fs/promises";
import { join, posix } from "node:path";
import type { WriteEntry } from "../tar/index.js";
import {
  extractFromSquashfs,
  type Inode,
  readTextFromSquashfs,
  resolveIn,
  type TreeView,
} from "./rootfs-files.js";

/**
 * Regular files whose content is kept as the rootfs streams into the squashfs: every direct
 * child of /boot (kernels, initrds, the Kairos /boot/vmlinuz and /boot/initrd), the kernel and
 * initrd that some distributions keep under /usr/lib/modules/VERSION/, and the release files.
 * Paths are tar paths (relative, normalized).
 */
export function worthCapturing(path: string): boolean {
  if (/^boot\/[^/]+$/.test(path)) return true;
  if (/^(usr\/)?lib\/modules\/[^/]+\/(vmlinuz|initrd)$/.test(path)) return true;
  return (
    path === "vmlinuz" ||
    path === "initrd.img" ||
    path === "etc/kairos-release" ||
    path === "etc/os-release" ||
    path === "usr/lib/os-release"
  );
}

interface Indexed {
  inode: Inode;
  /** Host file holding the content, for captured regular files (and hardlinks to them). */
  content?: string;
}

/**
 * What a rootfs tar stream held, recorded while it is packed: every entry's type and link
 * target, and the content of the few files the media need (worthCapturing). Finding and copying
 * the kernel and the initrd afterwards then costs no re-read of the squashfs (that took a
 * dozen rdsquashfs runs, one per path component looked at). A lookup that ends on a file whose
 * content was not kept falls back to the squashfs, so the result is the same either way.
 */
export class RootfsIndex implements TreeView {
  private readonly entries = new Map<string, Indexed>();
  private captured = 0;
  private impliedDirs?: Set<string>;

  constructor(
    /** Directory for captured contents (created on first use). */
    private readonly captureDir: string,
    readonly describe: string,
  ) {}

  /** Pass entries through unchanged while recording them. */
  async *tap(entries: AsyncIterable<WriteEntry> | Iterable<WriteEntry>): AsyncGenerator<WriteEntry> {
    for await (const entry of entries) {
      const h = entry.header;
      const key = h.path === "." || h.path === "" ? "/" : `/${h.path}`;
      this.impliedDirs = undefined;
      switch (h.type) {
        case "directory":
          this.entries.set(key, { inode: { type: "dir" } });
          break;
        case "symlink":
          this.entries.set(key, { inode: { type: "symlink", target: h.linkname ?? "" } });
          break;
        case "hardlink":
          // Same inode as its target, which the stream always carried before the link.
          this.entries.set(key, {
            inode: { type: "file" },
            content: this.entries.get(`/${h.linkname}`)?.content,
          });
          break;
        case "file":
          if (worthCapturing(h.path)) {
            const file = join(this.captureDir, String(this.captured++));
            this.entries.set(key, { inode: { type: "file" }, content: file });
            yield { header: h, body: await this.capture(entry.body, file) };
            continue;
          }
          this.entries.set(key, { inode: { type: "file" } });
          break;
        default:
          this.entries.set(key, { inode: { type: "other" } });
      }
      yield entry;
    }
  }

  /** The body, written to `file` as it is read; an in-memory body is written at once. */
  private async capture(
    body: WriteEntry["body"],
    file: string,
  ): Promise<Uint8Array | AsyncIterable<Uint8Array>> {
    await mkdir(this.captureDir, { recursive: true });
    const out = await open(file, "w");
    if (body === undefined || body instanceof Uint8Array) {
      try {
        if (body?.length) await out.write(body);
      } finally {
        await out.close();
      }
      return body ?? new Uint8Array(0);
    }
    return teeTo(body, out);
  }

  async stat(path: string): Promise<Inode | undefined> {
    const hit = this.entries.get(path);
    if (hit) return hit.inode;
    if (path === "/") return { type: "dir" };
    // A directory the stream never named but that holds entries (tar allows that).
    this.impliedDirs ??= this.computeImpliedDirs();
    return this.impliedDirs.has(path) ? { type: "dir" } : undefined;
  }

  async list(path: string): Promise<string[]> {
    if ((await this.stat(path))?.type !== "dir") return [];
    const prefix = path === "/" ? "/" : `${path}/`;
    const names = new Set<string>();
    for (const key of this.entries.keys()) {
      if (key.startsWith(prefix) && key.length > prefix.length)
        names.add(key.slice(prefix.length).split("/")[0]!);
    }
    return [...names];
  }

  /** Copy the regular file at `path` (symlinks followed) to `dest`; from the squashfs if not kept. */
  async extract(path: string, squashfs: string, dest: string): Promise<void> {
    const content = await this.contentOf(path);
    if (content) await copyFile(content, dest);
    else await extractFromSquashfs(squashfs, path, dest);
  }

  /** A small text file's content (symlinks followed), or undefined when it does not exist. */
  async readText(path: string, squashfs: string): Promise<string | undefined> {
    const r = await resolveIn(this, path);
    if (r?.inode.type !== "file") return undefined;
    const content = this.entries.get(r.path)?.content;
    return content ? readFile(content, "utf8") : readTextFromSquashfs(squashfs, r.path);
  }

  private async contentOf(path: string): Promise<string | undefined> {
    const r = await resolveIn(this, path);
    return r ? this.entries.get(r.path)?.content : undefined;
  }

  private computeImpliedDirs(): Set<string> {
    const dirs = new Set<string>();
    for (const key of this.entries.keys()) {
      for (let d = posix.dirname(key); d !== "/" && !dirs.has(d); d = posix.dirname(d)) dirs.add(d);
    }
    return dirs;
  }
}

async function* teeTo(body: AsyncIterable<Uint8Array>, out: FileHandle): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of body) {
      await out.write(chunk);
      yield chunk;
    }
  } finally {
    await out.close();
  }
}
