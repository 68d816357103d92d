import { KairosError, type Progress } from "../sys/index.js";
import { openDockerArchive, openOciArchive, writeDockerArchive, writeOciArchive } from "./archive.js";
import type { Credentials } from "./auth.js";
import { openDaemon, writeDaemon } from "./daemon.js";
import { openRootfsDir } from "./dir.js";
import { openLayout, writeLayout } from "./layout.js";
import { formatReference, type ImageReference, parseReference } from "./reference.js";
import { openRemote, pushImage } from "./remote.js";
import type { Image, Platform } from "./types.js";

export * from "./archive.js";
export * from "./auth.js";
export * from "./blobcache.js";
export * from "./compression.js";
export * from "./daemon.js";
export * from "./digest.js";
export * from "./dir.js";
export * from "./image.js";
export * from "./layout.js";
export * from "./multi.js";
export * from "./mutate.js";
export * from "./reference.js";
export * from "./remote.js";
export * from "./tmp.js";
export * from "./types.js";

export interface OpenOptions {
  /** Which image of an index / manifest list (default linux/amd64); for dir: the config's platform. */
  platform?: Platform;
  creds?: Credentials;
  /** Allow plain HTTP / unverified TLS registries. */
  insecure?: boolean;
  signal?: AbortSignal;
  /** Daemon socket instead of $DOCKER_HOST / the default paths. */
  daemonSocket?: string;
  /** docker://: cache blobs while the image is open, so a second read fetches nothing (BlobCache). */
  cacheBlobs?: boolean;
}

/** Open an image by transport reference (docker://, oci:, oci-archive:, docker-archive:, docker-daemon:, dir:). */
export async function openImage(ref: string | ImageReference, opts: OpenOptions = {}): Promise<Image> {
  const r = typeof ref === "string" ? parseReference(ref) : ref;
  switch (r.transport) {
    case "docker":
      return openRemote(r.ref, opts);
    case "oci":
      return openLayout(r.path, r.tag, opts.platform);
    case "oci-archive":
      return openOciArchive(r.path, r.tag, opts.platform);
    case "docker-archive":
      return openDockerArchive(r.path, { name: r.name, index: r.index });
    case "docker-daemon":
      return openDaemon(r.name, { signal: opts.signal, socket: opts.daemonSocket });
    case "dir":
      return openRootfsDir(r.path, { platform: opts.platform, signal: opts.signal });
  }
}

export interface WriteOptions {
  progress?: Progress;
  creds?: Credentials;
  insecure?: boolean;
  signal?: AbortSignal;
  /** Registry uploads in PATCH chunks of this size instead of one PUT per blob. */
  chunkSize?: number;
  daemonSocket?: string;
  /** Blobs transferred at once (default 3). */
  concurrency?: number;
}

/** Write an image to a destination reference; returns the manifest digest written. */
export async function writeImage(
  image: Image,
  dest: string | ImageReference,
  opts: WriteOptions = {},
): Promise<string> {
  const r = typeof dest === "string" ? parseReference(dest) : dest;
  switch (r.transport) {
    case "docker":
      return pushImage(image, r.ref, opts);
    case "oci":
      return writeLayout(image, r.path, r.tag, opts);
    case "oci-archive":
      return writeOciArchive(image, r.path, r.tag, opts);
    case "docker-archive":
      return writeDockerArchive(image, r.path, r.name, opts);
    case "docker-daemon":
      return writeDaemon(image, r.name, { ...opts, socket: opts.daemonSocket });
    case "dir":
      throw new KairosError(
        `${formatReference(r)} cannot be a destination here`,
        "to unpack an image into a root filesystem use 'kairos image unpack'",
      );
  }
}

/** Copy an image between any two transports: blobs are streamed, verified, never unpacked. */
export async function copyImage(
  src: string,
  dest: string,
  opts: OpenOptions & WriteOptions & { srcCreds?: Credentials; destCreds?: Credentials } = {},
): Promise<{ digest: string; image: Image }> {
  const destRef = parseReference(dest);
  const image = await openImage(src, { ...opts, creds: opts.srcCreds ?? opts.creds });
  try {
    const digest = await writeImage(image, destRef, { ...opts, creds: opts.destCreds ?? opts.creds });
    return { digest, image };
  } finally {
    await image.close();
  }
}
