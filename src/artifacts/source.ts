import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { flattenEntries } from "../oci/flatten.js";
import { type OpenOptions, openImage } from "../oci/index.js";
import type { Image } from "../oci/types.js";
import { KairosError } from "../sys/index.js";
import type { RootfsSource } from "./live.js";

/** A flattened rootfs tarball on disk (`docker export`, mmdebstrap's tar, `kairos image flatten`). */
export async function rootfsFromTarFile(path: string): Promise<RootfsSource> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new KairosError(`rootfs tarball ${path} does not exist`, "pass the path of a .tar file");
  if (!st.isFile())
    throw new KairosError(`rootfs tarball ${path} is not a file`, "pass the path of a .tar file");
  return {
    describe: path,
    size: st.size,
    open: () => ({ kind: "tar", bytes: createReadStream(path, { highWaterMark: 1 << 20 }) }),
  };
}

/** An opened image's flattened rootfs, streamed layer by layer (nothing unpacked to disk). */
export function rootfsFromImage(image: Image, describe = image.name): RootfsSource {
  return {
    describe,
    open: () => ({ kind: "entries", entries: flattenEntries(image) }),
  };
}

/**
 * Open an image by reference (docker://, oci:, oci-archive:, docker-archive:, docker-daemon:,
 * dir:) and give its rootfs. The caller closes the image when done.
 */
export async function openRootfsImage(
  ref: string,
  opts: OpenOptions = {},
): Promise<{ image: Image; rootfs: RootfsSource }> {
  const image = await openImage(ref, opts);
  return { image, rootfs: rootfsFromImage(image, ref) };
}

/**
 * AuroraBoot's `container_image` spelling: `docker://NAME` means the local Docker daemon and a
 * bare reference means a registry. Our transports are skopeo's (`docker://` is a registry,
 * `docker-daemon:` the daemon), so translate; every other transport passes through.
 */
export function auroraBootImageRef(value: string): string {
  if (value.startsWith("docker://")) return `docker-daemon:${value.slice("docker://".length)}`;
  if (/^(oci|oci-archive|docker-archive|docker-daemon|dir):/.test(value)) return value;
  return `docker://${value}`;
}
