import type { FlattenLayer, LayeredSource } from "../../src/oci/flatten.js";
import type { EntryType, TarHeader } from "../../src/tar/index.js";
import { writeTar } from "../../src/tar/index.js";
import { collect } from "./tmp.js";

/** Shorthand for one entry of a test layer. */
export interface E {
  path: string;
  type?: EntryType;
  content?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  linkname?: string;
  xattrs?: Map<string, Buffer>;
}

/** Encode a list of entries as a real tar layer. */
export async function layerTar(entries: E[]): Promise<Buffer> {
  return collect(
    writeTar(
      entries.map((e) => {
        const type = e.type ?? (e.content !== undefined ? "file" : "directory");
        const body = Buffer.from(e.content ?? "");
        const header: TarHeader = {
          path: e.path,
          type,
          mode: e.mode ?? (type === "directory" ? 0o755 : 0o644),
          uid: e.uid ?? 0,
          gid: e.gid ?? 0,
          size: type === "file" ? body.length : 0,
          mtime: 1700000000,
          linkname: e.linkname,
          xattrs: e.xattrs,
        };
        return { header, body: type === "file" ? body : undefined };
      }),
    ),
  );
}

/** An image made of in-memory tar layers (each can be read any number of times). */
export async function imageOf(...layers: E[][]): Promise<LayeredSource & { reads: number[] }> {
  const tars = await Promise.all(layers.map(layerTar));
  const reads = tars.map(() => 0);
  const ls: FlattenLayer[] = tars.map((buf, i) => ({
    digest: `sha256:layer${i}`,
    uncompressed: async () => {
      reads[i]!++;
      return (async function* () {
        yield buf;
      })();
    },
  }));
  return { name: "test", reads, layers: async () => ls };
}
