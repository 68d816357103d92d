import { posix } from "node:path";
import { imageEntries, ModuleSpill, normalize, setAsideModule, TarView } from "../factory/index.js";
import type { Image } from "../oci/index.js";
import type { TarEntry } from "../tar/types.js";

/** Label `kairos init` writes into the image config (src/factory/init.ts). */
export const KAIROS_FRAMEWORK_LABEL = "io.kairos.framework";

const KAIROS_OS_RELEASE = /^KAIROS_NAME=/m;

/** What one read of an image told: a Kairos image (and why), or the view of a base. */
export type ImageScan =
  | { kairos: true; evidence: string }
  | { kairos: false; view: TarView; modules: ModuleSpill };

/**
 * Learn what building media from `image` needs, reading it at most once.
 *
 * Cheap evidence first: the image config's `io.kairos.framework` label (`kairos init` writes
 * it) says Kairos image without reading a layer. Otherwise the flattened rootfs is read newest
 * layer first (flattenEntries), which sees only final entries: the scan stops at the first
 * `/etc/kairos-release` or KAIROS_NAME in `/etc/os-release` (what a Kairos image's top layers
 * hold, e.g. `RUN kairos-init`), so a Kairos image costs its top layers only. A base image is
 * read to the end once, and that read is all the factory needs: the view for the contract check
 * and the initramfs's module indexes, and the kernel modules set aside on disk, so the
 * initramfs needs no second read. The caller closes `modules`.
 */
export async function scanImage(image: Image, onBytes?: (done: number) => void): Promise<ImageScan> {
  const labels = (await image.config()).config?.Labels ?? {};
  if (labels[KAIROS_FRAMEWORK_LABEL]) {
    return { kairos: true, evidence: `label ${KAIROS_FRAMEWORK_LABEL}=${labels[KAIROS_FRAMEWORK_LABEL]}` };
  }
  const modules = await ModuleSpill.create();
  try {
    let evidence: string | undefined;
    /** /etc/os-release as final in the image: its KAIROS_NAME, or the path a symlink names. */
    let etc: { kairos: boolean } | { target: string } | undefined;
    let usrKairos = false;
    const decide = () => {
      if (!etc) return;
      if ("kairos" in etc ? etc.kairos : etc.target === "/usr/lib/os-release" && usrKairos) {
        evidence = "KAIROS_NAME in /etc/os-release";
      }
    };
    async function* watched(): AsyncGenerator<TarEntry> {
      for await (const e of imageEntries(image, onBytes)) {
        const path = normalize(e.path);
        const set = await setAsideModule(e, modules);
        if (set !== e) {
          yield set;
          continue;
        }
        if (path === "/etc/kairos-release" && (e.type === "file" || e.type === "hardlink")) {
          evidence = "/etc/kairos-release";
          return;
        }
        if ((path === "/etc/os-release" || path === "/usr/lib/os-release") && e.type === "file") {
          const chunks: Buffer[] = [];
          for await (const c of e.body) chunks.push(c);
          const text = Buffer.concat(chunks);
          const kairos = KAIROS_OS_RELEASE.test(text.toString("utf8"));
          if (path === "/etc/os-release") etc = { kairos };
          else usrKairos = kairos;
          decide();
          if (evidence) return;
          yield { ...e, body: once(text) };
          continue;
        }
        if (path === "/etc/os-release" && e.type === "symlink") {
          etc = { target: posix.resolve("/etc", e.linkname ?? "") };
          decide();
          if (evidence) return;
        }
        yield e;
      }
    }
    const view = await TarView.fromEntries(watched());
    // Read to the end: what the stream could not tell on the fly (a kairos-release or an
    // os-release behind other symlinks) is looked up in the complete view.
    if (!evidence && (await view.exists("/etc/kairos-release"))) evidence = "/etc/kairos-release";
    if (
      !evidence &&
      KAIROS_OS_RELEASE.test((await view.readFile("/etc/os-release"))?.toString("utf8") ?? "")
    ) {
      evidence = "KAIROS_NAME in /etc/os-release";
    }
    if (evidence) {
      await modules.close();
      return { kairos: true, evidence };
    }
    return { kairos: false, view, modules };
  } catch (err) {
    await modules.close();
    throw err;
  }
}

async function* once(b: Buffer): AsyncGenerator<Buffer> {
  yield b;
}
