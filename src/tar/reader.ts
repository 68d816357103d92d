import { ByteSource, TarFormatError } from "./bytes.js";
import { BLOCK, decodeHeader, entryTypeOf, isZeroBlock, parsePax, type RawHeader } from "./header.js";
import { normalizeEntryPath } from "./path.js";
import type { TarEntry } from "./types.js";

export interface ReadTarOptions {
  /** Largest pax or GNU long-name record accepted (default 1 MiB): bounds memory on hostile input. */
  maxMetadataBytes?: number;
  /** Name used in error messages (e.g. "layer sha256:…"). */
  label?: string;
}

const EMPTY: AsyncIterable<Buffer> = {
  async *[Symbol.asyncIterator]() {},
};

function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/**
 * Read a tar stream entry by entry. ustar, pax (with byte-exact SCHILY.xattr values and
 * LIBARCHIVE.xattr base64 values), GNU long names/links and base-256 numbers are understood.
 * Each entry's body must be consumed before asking for the next one, or it is skipped.
 * The source is read to its end, past the end-of-archive marker, before the last `next()`
 * settles, so a source that fails at its end (a digest mismatch) fails the read.
 * Throws TarFormatError for a corrupt header or an archive that ends early, and
 * UnsafePathError for absolute or ".." names.
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array>,
  opts: ReadTarOptions = {},
): AsyncGenerator<TarEntry> {
  const src = new ByteSource(source);
  const maxMeta = opts.maxMetadataBytes ?? 1 << 20;
  const where = opts.label ? ` in ${opts.label}` : "";
  let globalPax = new Map<string, Buffer>();
  try {
    for (;;) {
      let pax = new Map<string, Buffer>();
      let longName: Buffer | undefined;
      let longLink: Buffer | undefined;
      let raw: RawHeader;
      let headerOffset: number;
      // Collect extension headers until a real entry.
      for (;;) {
        headerOffset = src.position;
        const block = await src.read(BLOCK);
        if (block.length === 0) {
          throw new TarFormatError(
            `tar archive${where} ends without its end-of-archive marker: it is truncated`,
          );
        }
        if (block.length < BLOCK)
          throw new TarFormatError(`tar archive${where} ends inside a header at byte ${headerOffset}`);
        if (isZeroBlock(block)) {
          // The end-of-archive marker. The rest of the source (the second zero block, record
          // padding, or whatever else a producer put there) is read too: a verifying source
          // (an image layer) can only compare its digest once its last byte went through.
          await src.drain();
          return;
        }
        raw = decodeHeader(block, headerOffset);
        const t = raw.typeflag;
        if (t === "x" || t === "g" || t === "L" || t === "K") {
          if (raw.size > maxMeta) {
            throw new TarFormatError(
              `tar extension header at byte ${headerOffset}${where} is ${raw.size} bytes, over the ${maxMeta}-byte limit`,
            );
          }
          const data = await src.read(raw.size);
          if (data.length < raw.size)
            throw new TarFormatError(`tar archive${where} ends inside an extension header`);
          await src.skip(padding(raw.size));
          if (t === "x") pax = new Map([...pax, ...parsePax(data, headerOffset)]);
          else if (t === "g") globalPax = new Map([...globalPax, ...parsePax(data, headerOffset)]);
          else {
            const nul = data.indexOf(0);
            const v = Buffer.from(nul < 0 ? data : data.subarray(0, nul));
            if (t === "L") longName = v;
            else longLink = v;
          }
          continue;
        }
        break;
      }
      const type = entryTypeOf(raw.typeflag);
      if (type === undefined) {
        if (raw.typeflag === "S")
          throw new TarFormatError(`GNU sparse file at byte ${headerOffset}${where} is not supported`);
        // Volume labels and unknown vendor types carry no filesystem object: skip their data.
        await src.skip(raw.size + padding(raw.size));
        continue;
      }
      const all = globalPax.size ? new Map([...globalPax, ...pax]) : pax;
      const text = (k: string) => all.get(k)?.toString("utf8");
      const num = (k: string, fallback: number) => {
        const v = text(k);
        if (v === undefined) return fallback;
        const n = Number(v);
        if (!Number.isFinite(n) || n < 0)
          throw new TarFormatError(
            `pax ${k}=${JSON.stringify(v)} at byte ${headerOffset}${where} is not a number`,
          );
        return n;
      };
      const rawName = text("path") ?? (longName ?? raw.name).toString("utf8");
      const rawLink = text("linkpath") ?? (longLink ?? raw.linkname).toString("utf8");
      const size = type === "file" ? num("size", raw.size) : 0;
      const xattrs = new Map<string, Buffer>();
      for (const [k, v] of all) {
        if (k.startsWith("SCHILY.xattr.")) xattrs.set(k.slice(13), v);
        else if (k.startsWith("LIBARCHIVE.xattr.")) {
          xattrs.set(decodeURIComponent(k.slice(17)), Buffer.from(v.toString("latin1"), "base64"));
        }
      }
      const path = normalizeEntryPath(rawName, `entry${where}`);
      const entry: TarEntry = {
        path,
        type,
        mode: raw.mode & 0o7777,
        uid: num("uid", raw.uid),
        gid: num("gid", raw.gid),
        uname: text("uname") ?? (raw.uname || undefined),
        gname: text("gname") ?? (raw.gname || undefined),
        size,
        mtime: num("mtime", raw.mtime),
        linkname:
          type === "hardlink"
            ? normalizeEntryPath(rawLink, `hardlink target of ${JSON.stringify(rawName)}${where}`)
            : type === "symlink"
              ? rawLink
              : undefined,
        devmajor:
          type === "chardev" || type === "blockdev" ? num("SCHILY.devmajor", raw.devmajor) : undefined,
        devminor:
          type === "chardev" || type === "blockdev" ? num("SCHILY.devminor", raw.devminor) : undefined,
        xattrs: xattrs.size ? xattrs : undefined,
        body: EMPTY,
      };
      // Entries other than regular files may still declare data (e.g. hardlinks in some writers): skip it.
      const dataSize = type === "file" ? size : raw.typeflag === "1" || raw.typeflag === "5" ? 0 : raw.size;
      let remaining = type === "file" ? size : 0;
      let consumed = false;
      if (type === "file" && size > 0) {
        const body = async function* (): AsyncGenerator<Buffer> {
          if (consumed) throw new Error(`body of ${path} read after moving to the next entry`);
          while (remaining > 0) {
            const chunk = await src.readSome(Math.min(remaining, 1 << 20));
            if (chunk.length === 0) {
              throw new TarFormatError(`tar archive${where} ends inside the content of ${path}`);
            }
            remaining -= chunk.length;
            yield chunk;
          }
        };
        entry.body = { [Symbol.asyncIterator]: body };
      }
      yield entry;
      consumed = true;
      const pending = type === "file" ? remaining : dataSize;
      const need = pending + padding(type === "file" ? size : dataSize);
      if ((await src.skip(need)) < need) {
        throw new TarFormatError(`tar archive${where} ends inside the content of ${path}`);
      }
    }
  } finally {
    await src.close();
  }
}
