import { stat } from "node:fs/promises";
import { resolve } from "node:path";
import { Readable } from "node:stream";
import { KairosError } from "../sys/index.js";
import { packDirectory, writeTar } from "../tar/index.js";
import type { BuiltImage } from "./image.js";
import { appendLayer, emptyImage } from "./mutate.js";
import { DEFAULT_PLATFORM } from "./reference.js";
import type { Platform } from "./types.js";

/**
 * Open `dir:ROOTFS`: a plain root filesystem directory as an image with one gzip layer
 * (the seed's `FROM scratch` / `ADD . /`). The directory is packed once with owners, modes,
 * xattrs, hardlinks and device nodes; mtimes are clamped to SOURCE_DATE_EPOCH when it is set.
 * Note: skopeo's `dir:` is a different thing (a directory of blobs); ours is a rootfs.
 */
export async function openRootfsDir(
  dir: string,
  opts: { platform?: Platform; signal?: AbortSignal; onBytes?: (n: number) => void } = {},
): Promise<BuiltImage> {
  const st = await stat(dir).catch(() => undefined);
  if (!st?.isDirectory())
    throw new KairosError(`dir:${dir}: no such directory`, "give the path of a root filesystem");
  const sde = process.env.SOURCE_DATE_EPOCH;
  const sourceDateEpoch = sde && /^\d+$/.test(sde) ? Number(sde) : undefined;
  const base = emptyImage(opts.platform ?? DEFAULT_PLATFORM, `dir:${dir}`);
  const tar = Readable.from(
    writeTar(packDirectory(dir, sourceDateEpoch !== undefined ? { sourceDateEpoch } : {})),
  );
  return appendLayer(base, tar, {
    history: { created_by: `kairos: ADD ${resolve(dir)} /` },
    signal: opts.signal,
    onBytes: opts.onBytes,
  });
}
