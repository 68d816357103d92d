import { closeSync, openSync, readSync, writeSync } from "node:fs";
import { join } from "node:path";
import { makeTempDir } from "../oci/index.js";
import { KairosError } from "../sys/index.js";
import type { TarEntry } from "../tar/types.js";
import { normalize } from "./rootfs-view.js";

/** Kernel module files: the only contents the universal initramfs takes from the image. */
export const MODULE_FILE = /^\/(usr\/)?lib\/modules\/[^/]+\/.+\.ko(\.(xz|zst|gz))?$/;

/**
 * Kernel modules set aside on disk during the scan, for the initramfs (no second read): one
 * append-only file written with synchronous calls as the bytes pass (a Debian kernel's
 * modules are ~380 MB in 4 000 files: no copy, no open per module), read back by offset.
 */
export class ModuleSpill {
  private readonly at = new Map<string, { offset: number; length: number }>();
  private fd: number | undefined;
  /** Bytes set aside. */
  bytes = 0;
  private constructor(
    private readonly dir: string,
    private readonly cleanup: () => Promise<void>,
  ) {
    this.fd = openSync(join(dir, "modules"), "w+");
  }

  /** A spill in a new directory under `parent` (default $KAIROS_TMPDIR, else the system's). */
  static async create(parent?: string): Promise<ModuleSpill> {
    const { dir, cleanup } = await makeTempDir("modules", parent);
    return new ModuleSpill(dir, cleanup);
  }

  async put(path: string, body: AsyncIterable<Buffer>): Promise<void> {
    const offset = this.bytes;
    for await (const c of body) {
      try {
        for (let off = 0; off < c.length; )
          off += writeSync(this.fd!, c, off, c.length - off, this.bytes + off);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
        // A kernel's modules are a few hundred MB: say where they went and how to move them.
        throw new KairosError(
          `no space left in ${this.dir} for the kernel modules set aside while reading the image (${Math.round(this.bytes / 1e6)} MB written before it)`,
          "free space there, or set KAIROS_TMPDIR to a directory on a larger filesystem",
        );
      }
      this.bytes += c.length;
    }
    this.at.set(path, { offset, length: this.bytes - offset });
  }

  /** A hardlink to a module set aside: the same bytes. False when the target was not. */
  alias(path: string, target: string): boolean {
    const t = this.at.get(target);
    if (t) this.at.set(path, t);
    return t !== undefined;
  }

  async read(path: string): Promise<Buffer | undefined> {
    const t = this.at.get(path);
    if (!t || this.fd === undefined) return undefined;
    const buf = Buffer.allocUnsafe(t.length);
    for (let off = 0; off < t.length; ) {
      const n = readSync(this.fd, buf, off, t.length - off, t.offset + off);
      if (n === 0) throw new Error(`module spill ${this.dir}: short read of ${path}`);
      off += n;
    }
    return buf;
  }

  async close(): Promise<void> {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    await this.cleanup();
  }
}

/**
 * Pass `entries` on, with the bodies of kernel module files set aside in `spill` (their entries
 * stay, with empty bodies, so a view still lists them) and hardlinks to them recorded. One read
 * of an image then gives the factory both its view and the modules the initramfs takes.
 */
export async function* setAsideModules(
  entries: AsyncIterable<TarEntry>,
  spill: ModuleSpill,
): AsyncGenerator<TarEntry> {
  for await (const e of entries) yield await setAsideModule(e, spill);
}

/** One entry of setAsideModules: a module file's body goes to the spill. */
export async function setAsideModule(e: TarEntry, spill: ModuleSpill): Promise<TarEntry> {
  const path = normalize(e.path);
  if (!MODULE_FILE.test(path)) return e;
  if (e.type === "file") {
    await spill.put(path, e.body);
    return { ...e, body: empty() };
  }
  if (e.type === "hardlink") spill.alias(path, normalize(e.linkname ?? ""));
  return e;
}

async function* empty(): AsyncGenerator<Buffer> {}
