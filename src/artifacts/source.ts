import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { pipeline } from "node:stream";
import {
  assertContract,
  buildInitramfs,
  doctor,
  frameworkLayer,
  imageReadTask,
  layerBytesTo,
} from "../factory/index.js";
import { flattenEntries } from "../oci/flatten.js";
import { appendLayer, type OpenOptions, openImage } from "../oci/index.js";
import type { Image } from "../oci/types.js";
import { countBytes, formatBytes, KairosError, type Progress } from "../sys/index.js";
import { writeTar } from "../tar/index.js";
import { scanImage } from "./image-scan.js";
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
    open: (onBytes) => {
      const file = createReadStream(path, { highWaterMark: 1 << 20 });
      return { kind: "tar", bytes: onBytes ? pipeline(file, countBytes(onBytes), () => {}) : file };
    },
  };
}

/**
 * An opened image's flattened rootfs, streamed layer by layer (nothing unpacked to disk).
 * Progress counts compressed blob bytes against the layers' sizes from the manifest.
 */
export async function rootfsFromImage(image: Image, describe = image.name): Promise<RootfsSource> {
  const layers = await image.layers();
  return {
    describe,
    size: layers.reduce((sum, l) => sum + l.size, 0),
    open: (onBytes) => ({
      kind: "entries",
      entries: flattenEntries(image, { onBytes: onBytes && ((e) => onBytes(e.done)) }),
    }),
  };
}

export interface KairosRootfsOptions extends OpenOptions {
  /**
   * "auto" (default): a base image without /etc/kairos-release gets `kairos init` applied on
   * the fly (in memory: base layers + one framework layer); "never": use the image as is.
   */
  init?: "auto" | "never";
  progress?: Progress;
}

export interface OpenedKairosRootfs {
  rootfs: RootfsSource;
  /** True when `kairos init` was applied on the fly. */
  initialized: boolean;
  close(): Promise<void>;
}

/**
 * Open an image by reference (docker://, oci:, oci-archive:, docker-archive:, docker-daemon:,
 * dir:) and give the rootfs of its Kairos form: a Kairos image as it is, a base image with
 * the factory applied on the fly (contract check first, so a base without a kernel is
 * refused with the doctor's findings before anything is built).
 *
 * Each image is read once for what the command must know (scanImage: the config's label, else
 * the newest layers, else one full read that also gives the initramfs its modules), and a
 * registry's blobs are cached for the command, so the build's own read fetches nothing again.
 * What the scan cannot see (a kernel missing from an image labelled Kairos) fails in the build,
 * before the medium is renamed into place.
 */
export async function openKairosRootfs(
  ref: string,
  opts: KairosRootfsOptions = {},
): Promise<OpenedKairosRootfs> {
  const image = await openImage(ref, { ...opts, cacheBlobs: opts.init !== "never" });
  try {
    if (opts.init === "never") {
      return { rootfs: await rootfsFromImage(image, ref), initialized: false, close: () => image.close() };
    }
    const { task: t1, onBytes: read1 } = await imageReadTask(opts.progress, `check ${ref}`, image);
    const scan = await scanImage(image, read1);
    if (scan.kairos) {
      t1?.finish(`Kairos image (${scan.evidence})`);
      return { rootfs: await rootfsFromImage(image, ref), initialized: false, close: () => image.close() };
    }
    const { view, modules } = scan;
    try {
      const report = await doctor(view);
      if (!report.ok) t1?.fail("contract not met");
      assertContract(report, ref);
      t1?.finish(
        `base image (${report.family}, kernel ${report.kernel!.version}): applying kairos init on the fly`,
      );
      const t2 = opts.progress?.task("universal initramfs");
      const initrd = await buildInitramfs({
        view,
        kernel: report.kernel!,
        // Set aside by the scan: resolved through the view's symlinks (/lib → usr/lib).
        readModule: async (p) => modules.read((await view.realpath(p)) ?? p),
      });
      t2?.finish(`${formatBytes(initrd.data.length)}, ${initrd.modules.length} modules`);
      const t3 = opts.progress?.task("framework layer", undefined, "bytes");
      const layer = await frameworkLayer(view, report, initrd, { signal: opts.signal });
      const kairos = await appendLayer(image, writeTar(layer.entries), {
        onBytes: layerBytesTo(t3, layer.bytes),
        // The layer lives only for this build and is read once, right away: compressing ~130 MB
        // (mostly the agent) to decompress it again cost seconds of CPU for nothing.
        compression: "none",
        signal: opts.signal,
        history: { created_by: "kairos init (on the fly, for media)" },
      });
      t3?.finish();
      return {
        rootfs: await rootfsFromImage(kairos, `${ref} + kairos init`),
        initialized: true,
        close: async () => {
          await kairos.close();
          await image.close();
        },
      };
    } finally {
      await modules.close();
    }
  } catch (err) {
    await image.close();
    throw err;
  }
}
