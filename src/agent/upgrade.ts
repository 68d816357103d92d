import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
// The four artifact modules the upgrade streams through, imported by file and not through
// artifacts/index.js: the agent's single executable then carries none of the media builders
// (ISO, GRUB, live) that the index would pull in (test/unit/agent/agent-bundle.test.ts).
import { RootfsIndex } from "../artifacts/rootfs-index.js";
import { prepareRootfsTar } from "../artifacts/rootfs-stream.js";
import { type SquashfsOptions, squashfsFromTar } from "../artifacts/squashfs.js";
import { parseOsRelease } from "../factory/os-release.js";
import { flattenEntries } from "../oci/flatten.js";
import { type OpenOptions, openImage } from "../oci/index.js";
import { formatBytes, KairosError, type Progress } from "../sys/index.js";
import { readGrubenv, updateGrubenv } from "./grubenv.js";
import {
  beginSlot,
  checkSpace,
  commitSlot,
  garbageCollect,
  pointSlot,
  type RotateStep,
  resolveSlot,
  rotateSlots,
  type SlotInfo,
} from "./slots.js";
import { capYoungGeneration } from "./upgrade-memory.js";
import { upgradeSourceRef } from "./upgrade-source.js";

/** Step boundaries of an upgrade, in order (progress, and the power-cut tests stop at each). */
export type UpgradeStep = "checked" | "written" | "committed" | RotateStep | "cleaned";

export interface UpgradeOptions {
  /** The `cOS` directory on the mounted, writable partition (COS_STATE, or COS_RECOVERY for recovery). */
  cos: string;
  /** The source as the user wrote it (upstream spellings accepted: upgradeSourceRef). */
  source: string;
  /** Which name gets the new slot: active (passive := old active) or recovery. */
  target: "active" | "recovery";
  /** COS_OEM's grubenv: the boot-assessment trial is set there for an active upgrade. */
  grubenv?: string;
  open?: OpenOptions;
  squashfs?: SquashfsOptions;
  progress?: Progress;
  onStep?: (step: UpgradeStep) => Promise<void> | void;
}

export interface UpgradeResult {
  id: string;
  info: SlotInfo;
  imageBytes: number;
}

/** Filesystem slack for the slot's directory, slot.json and metadata blocks. */
const SLOT_EXTRA_BYTES = 4 * 1024 * 1024;

/**
 * How many bytes the new slot may take, from the image's layer sizes: the squashfs (zstd) of a
 * rootfs is about the size of its gzip/zstd layers (249 MB squashfs from 257 MB of gzip layers
 * for the default image), and the kernel and initrd copied beside it add ~15 % (40 MB there);
 * 30 % in all leaves room for a worse compression ratio.
 */
export function estimateSlotBytes(layerBytes: number): number {
  return Math.ceil(layerBytes * 1.3) + SLOT_EXTRA_BYTES;
}

/**
 * Write a new system slot from an image and make it active (or recovery), per
 * docs/lifecycle.md: space check, image streamed into `slots/.tmp-<id>/system.img` while the
 * kernel, initrd and kairos-release are captured as they pass, fsync, rename into place, then
 * the rotation (passive := old active, trial, active := new), then old slots removed.
 */
export async function upgradeSystem(opts: UpgradeOptions): Promise<UpgradeResult> {
  // The agent's peak RSS (issue #10: <= 120 MB) is set by this stream; see upgrade-memory.ts.
  capYoungGeneration();
  const ref = upgradeSourceRef(opts.source);
  const image = await openImage(ref, opts.open);
  try {
    const layers = await image.layers();
    const layerBytes = layers.reduce((n, l) => n + l.size, 0);
    await mkdir(opts.cos, { recursive: true });
    // Slots a crash or a failed write left behind do not count against the new one.
    await garbageCollect(opts.cos, opts.target === "recovery" ? ["recovery"] : ["active", "passive"]);
    const needed = estimateSlotBytes(layerBytes);
    await checkSpace(opts.cos, needed, `the new system image from ${opts.source}`);
    await opts.onStep?.("checked");

    const { id, dir } = await beginSlot(opts.cos);
    const captureDir = join(dir, ".capture");
    let info: SlotInfo;
    let imageBytes = 0;
    try {
      const index = new RootfsIndex(captureDir, ref);
      const img = join(dir, "system.img");
      const task = opts.progress?.task(`write ${opts.target} image from ${opts.source}`, undefined, "bytes");
      const tar = prepareRootfsTar(
        { kind: "entries", entries: flattenEntries(image) },
        {
          label: ref,
          tap: (e) => index.tap(e),
        },
      );
      const r = await squashfsFromTar(tar, img, {
        ...opts.squashfs,
        onBytes: (n) => task?.update(n),
      });
      imageBytes = r.tarBytes;
      task?.finish(formatBytes(r.tarBytes));
      const release = await index.readText("/etc/kairos-release", img);
      if (release === undefined) {
        throw new KairosError(
          `${opts.source} is not a Kairos image (no /etc/kairos-release)`,
          "upgrade to an image made with 'kairos init' (or the seed's Dockerfile); nothing was changed",
        );
      }
      for (const [file, want] of [
        ["vmlinuz", "/boot/vmlinuz"],
        ["initrd", "/boot/initrd"],
      ] as const) {
        if ((await index.stat(want)) === undefined) {
          throw new KairosError(
            `${opts.source} has no ${want}`,
            "a Kairos image carries its kernel and initrd at /boot/vmlinuz and /boot/initrd; nothing was changed",
          );
        }
        await index.extract(want, img, join(dir, file));
      }
      await rm(captureDir, { recursive: true, force: true });
      const version = parseOsRelease(release, "/etc/kairos-release").get("KAIROS_VERSION");
      info = {
        source: opts.source,
        digest: await image.digest(),
        ...(version ? { version } : {}),
        created: new Date().toISOString(),
      };
      await opts.onStep?.("written");
      await commitSlot(opts.cos, id, info);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      if ((err as NodeJS.ErrnoException).code === "ENOSPC") {
        throw new KairosError(
          `the partition of ${opts.cos} filled up while writing the new image (estimated ${formatBytes(needed)})`,
          "free space or make the partition larger; nothing was changed",
        );
      }
      throw err;
    }
    await opts.onStep?.("committed");

    if (opts.target === "recovery") {
      await pointSlot(opts.cos, "recovery", id);
      await opts.onStep?.("active");
    } else {
      const grubenv = opts.grubenv;
      const env = grubenv ? await readGrubenv(grubenv) : new Map<string, string>();
      const activeFailed =
        env.get("upgrade_failure") === "1" && (await resolveSlot(opts.cos, "passive")) !== undefined;
      await rotateSlots(opts.cos, id, {
        activeFailed,
        setTrial: grubenv
          ? async () => {
              await updateGrubenv(grubenv, { boot_assessment: "trial", upgrade_failure: undefined });
            }
          : undefined,
        onStep: opts.onStep,
      });
    }
    await garbageCollect(opts.cos, opts.target === "recovery" ? ["recovery"] : ["active", "passive"]);
    await opts.onStep?.("cleaned");
    return { id, info, imageBytes };
  } finally {
    await image.close();
  }
}
