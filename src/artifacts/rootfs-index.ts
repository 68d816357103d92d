import { copyFile, type FileHandle, mkdir, open, readFile } from "node:fs/promises";
import { join } from "node:path";
import { PathTrie, type WriteEntry } from "../tar/index.js";
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

/** Inode types by code (the value of a recorded node); 0 is not recorded (a directory implied by what is under it). */
const INODE_TYPES: readonly Inode["type"][] = ["dir", "dir", "file", "symlink", "other"];
const CODE = { dir: 1, file: 2, symlink: 3, other: 4 } as const;

/**
 * What a rootfs tar stream held, recorded while it is packed: every entry's type and link
 * target, and the content of the few files the media need (worthCapturing). Finding and copying
 * the kernel and the initrd afterwards then costs no re-read of the squashfs (that took a
 * dozen rdsquashfs runs, one per path component looked at). A lookup that ends on a file whose
 * content was not kept falls back to the squashfs, so the result is the same either way.
 * The paths are kept in a PathTrie (a few bytes a path: an image can hold 100 000 files).
 */
export class RootfsIndex implements TreeView {
  /** Tar paths (relative); a node's value is its CODE, 0 for a directory only implied. */
  private readonly paths = new PathTrie();
  /** The entry "." (or ""): the root itself. */
  private root?: Inode;
  private readonly targets = new Map<number, string>();
  /** Host file holding the content, for captured regular files (and hardlinks to them). */
  private readonly contents = new Map<number, string>();
  private captured = 0;

  constructor(
    /** Directory for captured contents (created on first use). */
    private readonly captureDir: string,
    readonly describe: string,
  ) {}

  /** Pass entries through unchanged while recording them. */
  async *tap(entries: AsyncIterable<WriteEntry> | Iterable<WriteEntry>): AsyncGenerator<WriteEntry> {
    for await (const entry of entries) {
      const h = entry.header;
      if (h.path === "." || h.path === "") {
        this.root = recordedInode(h.type, h.linkname);
        yield entry;
        continue;
      }
      const node = this.paths.add(h.path);
      this.targets.delete(node);
      this.contents.delete(node);
      switch (h.type) {
        case "directory":
          this.paths.setValue(node, CODE.dir);
          break;
        case "symlink":
          this.paths.setValue(node, CODE.symlink);
          this.targets.set(node, h.linkname ?? "");
          break;
        case "hardlink": {
          // Same inode as its target, which the stream always carried before the link.
          this.paths.setValue(node, CODE.file);
          const content = this.contents.get(this.paths.find(h.linkname ?? ""));
          if (content !== undefined) this.contents.set(node, content);
          break;
        }
        case "file":
          this.paths.setValue(node, CODE.file);
          if (worthCapturing(h.path)) {
            const file = join(this.captureDir, String(this.captured++));
            this.contents.set(node, file);
            yield { header: h, body: await this.capture(entry.body, file) };
            continue;
          }
          break;
        default:
          this.paths.setValue(node, CODE.other);
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
    if (path === "/") return this.root ?? { type: "dir" };
    const node = this.nodeOf(path);
    if (node === 0) return undefined;
    const code = this.paths.value(node);
    return code === CODE.symlink
      ? { type: "symlink", target: this.targets.get(node) ?? "" }
      : { type: INODE_TYPES[code]! };
  }

  async list(path: string): Promise<string[]> {
    if ((await this.stat(path))?.type !== "dir") return [];
    const node = path === "/" ? 0 : this.nodeOf(path);
    return this.paths.children(node).map((n) => this.paths.nameOf(n));
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
    const content = this.contentAt(r.path);
    return content ? readFile(content, "utf8") : readTextFromSquashfs(squashfs, r.path);
  }

  private async contentOf(path: string): Promise<string | undefined> {
    const r = await resolveIn(this, path);
    return r ? this.contentAt(r.path) : undefined;
  }

  private contentAt(path: string): string | undefined {
    const node = this.nodeOf(path);
    return node === 0 ? undefined : this.contents.get(node);
  }

  /** The node of an absolute path ("/a/b"), 0 when the stream held nothing there. */
  private nodeOf(path: string): number {
    return path.startsWith("/") && path !== "/" ? this.paths.find(path.slice(1)) : 0;
  }
}

function recordedInode(type: WriteEntry["header"]["type"], linkname: string | undefined): Inode {
  if (type === "directory") return { type: "dir" };
  if (type === "symlink") return { type: "symlink", target: linkname ?? "" };
  return { type: type === "file" || type === "hardlink" ? "file" : "other" };
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
