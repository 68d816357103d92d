import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { appendLayer, editConfig, emptyImage, writeImage } from "../oci/index.js";
import { cacheRoot, KairosError, type Progress, run } from "../sys/index.js";
import { readTar, type WriteEntry, writeTar } from "../tar/index.js";

/**
 * The built-in default base image: Debian bookworm made with mmdebstrap, following the seed's
 * package list as far as Debian allows, written as an OCI image with two layers so that
 * whiteouts, an opaque directory and a hardlink across layers occur in it.
 */
export const DEBIAN_SUITE = "bookworm";

/** The seed's Fedora package list, in Debian's names (see docs/base-image.md for the mapping). */
export const DEBIAN_PACKAGES = [
  "linux-image-amd64",
  "tiny-initramfs", // satisfies the kernel's initramfs-tool dependency without running mkinitramfs
  "systemd",
  "systemd-sysv",
  "systemd-resolved",
  "systemd-timesyncd",
  "udev",
  "dbus",
  "kmod",
  "util-linux",
  "fdisk",
  "gdisk",
  "parted",
  "e2fsprogs",
  "dosfstools",
  "squashfs-tools",
  "rsync",
  "sudo",
  "openssh-server",
  "grub-pc-bin",
  "grub-efi-amd64-bin",
  "grub2-common",
  "efibootmgr",
  "dmsetup",
  "lvm2",
  "curl",
  "ca-certificates",
  "gawk",
  "haveged",
  "nano",
  "iproute2",
  "procps",
  "less",
  "tar",
  "zstd",
] as const;

/** Bump when the recipe below changes in a way that changes the image. */
const RECIPE_VERSION = 1;

export interface DefaultBase {
  /** Cache directory holding everything below. */
  dir: string;
  /** mmdebstrap's tarball: the first layer, uncompressed. */
  rootfsTar: string;
  /** The image as an OCI layout directory (tag `latest`). */
  ociLayout: string;
  /** The same image as an oci-archive file. */
  ociArchive: string;
  /** `oci:<layout>:latest` — what to pass to any kairos command. */
  ref: string;
  /** `oci-archive:<file>:latest`. */
  archiveRef: string;
  /** Hash of the inputs; names the cache directory. */
  key: string;
}

/** The Debian mirror this machine's apt uses (deb822 or one-line sources), else deb.debian.org. */
export async function hostDebianMirror(): Promise<string> {
  for (const file of ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"]) {
    const text = await readFile(file, "utf8").catch(() => "");
    const deb822 = /^URIs:\s*(\S+)/m.exec(text);
    if (deb822) return deb822[1]!;
    const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+\S+/m.exec(text);
    if (line) return line[1]!;
  }
  return "http://deb.debian.org/debian";
}

function paths(dir: string, key: string): DefaultBase {
  const ociLayout = join(dir, "oci");
  const ociArchive = join(dir, "image.oci.tar");
  return {
    dir,
    key,
    rootfsTar: join(dir, "rootfs.tar"),
    ociLayout,
    ociArchive,
    ref: `oci:${ociLayout}:latest`,
    archiveRef: `oci-archive:${ociArchive}:latest`,
  };
}

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

/** Wait for and take a lock directory (mkdir is atomic); stale after `staleMs`. */
async function lock(path: string, staleMs = 20 * 60_000): Promise<() => Promise<void>> {
  for (;;) {
    try {
      await mkdir(path);
      await writeFile(join(path, "pid"), String(process.pid));
      return () => rm(path, { recursive: true, force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      const st = await stat(path).catch(() => undefined);
      if (st && Date.now() - st.mtimeMs > staleMs) await rm(path, { recursive: true, force: true });
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/**
 * The default base image, built on first use and cached under `<cache>/base/<key>`; later
 * calls return in milliseconds. Concurrent callers wait for one build.
 */
export async function ensureDefaultBase(
  opts: { cacheDir?: string; progress?: Progress; mirror?: string } = {},
): Promise<DefaultBase> {
  const key = createHash("sha256")
    .update(JSON.stringify({ suite: DEBIAN_SUITE, packages: DEBIAN_PACKAGES, recipe: RECIPE_VERSION }))
    .digest("hex")
    .slice(0, 16);
  const root = join(opts.cacheDir ?? cacheRoot(), "base");
  const final = paths(join(root, `debian-${DEBIAN_SUITE}-${key}`), key);
  if (await exists(join(final.dir, "done"))) return final;
  await mkdir(root, { recursive: true });
  const unlock = await lock(join(root, `.lock-${key}`));
  try {
    if (await exists(join(final.dir, "done"))) return final;
    const work = paths(join(root, `.build-${key}-${process.pid}`), key);
    await rm(work.dir, { recursive: true, force: true });
    await mkdir(work.dir, { recursive: true });
    try {
      await buildInto(work, opts.mirror ?? (await hostDebianMirror()), opts.progress);
      await writeFile(join(work.dir, "done"), `${new Date().toISOString()}\n`);
      await rm(final.dir, { recursive: true, force: true });
      await rename(work.dir, final.dir);
    } catch (e) {
      await rm(work.dir, { recursive: true, force: true });
      throw e;
    }
    return final;
  } finally {
    await unlock();
  }
}

async function buildInto(out: DefaultBase, mirror: string, progress?: Progress): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new KairosError(
      "building the default Debian base image needs root (mmdebstrap creates device nodes and owners)",
      "run it once as root (scripts/setup does), or pass your own image reference instead of the default",
    );
  }
  const t1 = progress?.task("debian base: mmdebstrap", undefined, "items");
  await run(
    "mmdebstrap",
    [
      "--variant=minbase",
      "--mode=root",
      "--format=tar",
      "--quiet",
      `--include=${DEBIAN_PACKAGES.join(",")}`,
      DEBIAN_SUITE,
      out.rootfsTar,
      mirror,
    ],
    { env: { ...process.env, SOURCE_DATE_EPOCH: process.env.SOURCE_DATE_EPOCH ?? "1700000000" } },
  ).catch((e) => {
    t1?.fail("mmdebstrap failed");
    throw e;
  });
  t1?.finish(`${((await stat(out.rootfsTar)).size / 2 ** 20).toFixed(0)} MiB`);

  // Look at what the first layer holds, to write the second one against it.
  const hostKeys: string[] = [];
  let sha256sum = false;
  for await (const e of readTar(createReadStream(out.rootfsTar, { highWaterMark: 1 << 20 }))) {
    if (e.path.startsWith("etc/ssh/ssh_host_")) hostKeys.push(e.path.slice("etc/ssh/".length));
    if (e.path === "usr/bin/sha256sum" && e.type === "file") sha256sum = true;
  }
  if (!sha256sum)
    throw new KairosError("the mmdebstrap rootfs has no usr/bin/sha256sum; the recipe needs updating");

  const t2 = progress?.task("debian base: OCI image (2 layers)", undefined, "bytes");
  let image = emptyImage({ os: "linux", architecture: "amd64" }, "kairos-ts default base");
  let done = 0;
  image = await appendLayer(image, createReadStream(out.rootfsTar, { highWaterMark: 1 << 20 }), {
    level: 1,
    history: {
      created_by: `mmdebstrap --variant=minbase ${DEBIAN_SUITE} (${DEBIAN_PACKAGES.length} packages)`,
    },
    onBytes: (n) => {
      done = n;
      t2?.update(n);
    },
  });
  image = await appendLayer(image, writeTar(secondLayer(hostKeys)), {
    level: 1,
    history: {
      created_by: "kairos-ts base recipe: drop SSH host keys, docs and apt caches; empty machine-id",
    },
  });
  image = await editConfig(image, {
    env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    cmd: ["/bin/bash"],
    labels: {
      "org.opencontainers.image.title": `kairos-ts default base (Debian ${DEBIAN_SUITE})`,
      "org.opencontainers.image.description": "Debian base for kairos-ts, built with mmdebstrap",
    },
  });
  try {
    await writeImage(image, `oci:${out.ociLayout}:latest`);
    await writeImage(image, `oci-archive:${out.ociArchive}:latest`);
  } finally {
    await image.close();
  }
  t2?.finish(`${(done / 2 ** 20).toFixed(0)} MiB uncompressed`);
}

/**
 * The second layer, the way an image build cleans up after its package manager: whiteouts for
 * the SSH host keys (a node must make its own) and the docs, opaque apt cache directories,
 * an empty machine-id, and a hardlink to a file of the first layer.
 */
function secondLayer(hostKeys: string[]): WriteEntry[] {
  const base = { mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1700000000 };
  const dir = (path: string): WriteEntry => ({ header: { ...base, path, type: "directory", mode: 0o755 } });
  const file = (path: string, content: string, mode = 0o644): WriteEntry => ({
    header: { ...base, path, type: "file", mode, size: Buffer.byteLength(content) },
    body: Buffer.from(content),
  });
  return [
    dir("etc"),
    dir("etc/ssh"),
    ...hostKeys.map((k) => file(`etc/ssh/.wh.${k}`, "")),
    file("etc/machine-id", "", 0o444),
    file("etc/kairos-ts-base", `Debian ${DEBIAN_SUITE} base for kairos-ts, recipe ${RECIPE_VERSION}\n`),
    dir("usr"),
    dir("usr/share"),
    file("usr/share/.wh.doc", ""),
    dir("usr/local"),
    dir("usr/local/bin"),
    { header: { ...base, path: "usr/local/bin/sha256sum", type: "hardlink", linkname: "usr/bin/sha256sum" } },
    dir("var"),
    dir("var/cache"),
    dir("var/cache/apt"),
    file("var/cache/apt/.wh..wh..opq", ""),
    dir("var/lib"),
    dir("var/lib/apt"),
    dir("var/lib/apt/lists"),
    file("var/lib/apt/lists/.wh..wh..opq", ""),
  ];
}
