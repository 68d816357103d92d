import { constants } from "node:fs";
import { access, lstat, mkdir, mkdtemp, rename, rm, stat, statfs, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { formatBytes, KairosError, type Progress } from "../sys/index.js";
import { loadCloudConfig, type MediaCloudConfig } from "./cloud-config.js";
import { type GrubMenuOptions, LIVE_LABEL, netbootCmdline } from "./grub.js";
import { assembleIso, checkOverlayIso, writeChecksum } from "./iso.js";
import { findBootFiles, parseEnvFile } from "./rootfs-files.js";
import { RootfsIndex } from "./rootfs-index.js";
import { prepareRootfsTar, type RootfsStream } from "./rootfs-stream.js";
import { type SquashfsOptions, squashfsFromTar } from "./squashfs.js";

/** Where a rootfs comes from: a function that opens its flattened stream (called once). */
export interface RootfsSource {
  /** Shown in progress and errors ("docker://…", "rootfs.tar"). */
  describe: string;
  /** `onBytes` hears the running count of source bytes read, out of `size`. */
  open(onBytes?: (done: number) => void): RootfsStream | Promise<RootfsStream>;
  /**
   * Source bytes that open() reads, known up front: a tarball's size, or the compressed size
   * of an image's layers (the manifest's numbers). The progress bar counts against it.
   */
  size?: number;
}

/** Kernel, initrd and squashfs of a live system, plus what its kairos-release says. */
export interface LiveArtifacts {
  squashfs: string;
  kernel: string;
  initrd: string;
  /** Where the kernel and the initrd were found in the image. */
  imageKernel: string;
  imageInitrd: string;
  /** /etc/kairos-release (or the KAIROS_* fields of /etc/os-release); empty for a plain base. */
  release: Record<string, string>;
  /** Bytes of rootfs tar packed. */
  tarBytes: number;
}

export interface LiveOptions {
  rootfs: RootfsSource;
  /** Directory the three files are written into. */
  dir: string;
  /** Host directory merged into the rootfs (AuroraBoot's iso.overlay_rootfs). */
  overlayRootfs?: string;
  squashfs?: SquashfsOptions;
  progress?: Progress;
  signal?: AbortSignal;
}

/**
 * The shared first half of every live medium (ISO, netboot): stream the rootfs tar into a
 * squashfs, keeping the kernel, the initrd and the release files as they pass, so all three
 * always come from the same bytes without reading the squashfs back.
 */
export async function buildLiveArtifacts(opts: LiveOptions): Promise<LiveArtifacts> {
  const squashfs = join(opts.dir, "rootfs.squashfs");
  const task = opts.progress?.task(`squashfs from ${opts.rootfs.describe}`, opts.rootfs.size, "bytes");
  let tarBytes = 0;
  // Records the tree and keeps the boot and release files as they stream past.
  const index = new RootfsIndex(join(opts.dir, "captured"), opts.rootfs.describe);
  try {
    // Counted where the total is known (the source's bytes), so the bar moves from the first
    // second; tar bytes fed to tar2sqfs are the fallback when the source has no size.
    const total = opts.rootfs.size;
    const source = await opts.rootfs.open(total ? (n) => task?.update(Math.min(n, total)) : undefined);
    const dropped: string[] = [];
    const prepared = prepareRootfsTar(source, {
      overlayDir: opts.overlayRootfs,
      label: opts.rootfs.describe,
      onDroppedXattr: (n) => dropped.push(n),
      tap: (entries) => index.tap(entries),
    });
    ({ tarBytes } = await squashfsFromTar(prepared, squashfs, {
      ...opts.squashfs,
      signal: opts.signal,
      onBytes: total ? undefined : (n) => task?.update(n),
    }));
    const size = (await stat(squashfs)).size;
    task?.finish(`wrote ${formatBytes(size)} of squashfs from ${formatBytes(tarBytes)} of tar`);
    if (dropped.length) {
      opts.progress?.info(`note: squashfs cannot store these xattrs, dropped: ${dropped.join(", ")}`);
    }
  } catch (err) {
    task?.fail(err instanceof Error ? err.message.split("\n")[0]! : String(err));
    throw err;
  }
  const boot = await findBootFiles(index);
  const kernel = join(opts.dir, "kernel");
  const initrd = join(opts.dir, "initrd");
  await index.extract(boot.kernel, squashfs, kernel);
  await index.extract(boot.initrd, squashfs, initrd);
  let release: Record<string, string> = {};
  const kr = await index.readText("/etc/kairos-release", squashfs);
  if (kr) release = parseEnvFile(kr);
  else {
    const os = await index.readText("/etc/os-release", squashfs);
    if (os) {
      release = Object.fromEntries(Object.entries(parseEnvFile(os)).filter(([k]) => k.startsWith("KAIROS_")));
    }
  }
  return { squashfs, kernel, initrd, imageKernel: boot.kernel, imageInitrd: boot.initrd, release, tarBytes };
}

/** The ISO's base name from kairos-release: `KAIROS_NAME-KAIROS_VERSION`, else "kairos". */
export function isoNameFromRelease(release: Record<string, string>): string {
  const name = release.KAIROS_NAME;
  const version = release.KAIROS_VERSION;
  if (!name) return "kairos";
  return safeName(version ? `${name}-${version}` : name);
}

function safeName(s: string): string {
  return s.replace(/[^A-Za-z0-9._+-]/g, "_").replace(/^\.+/, "_");
}

/** Refuse an ISO name that is empty or would leave the output directory. */
export function checkIsoName(name: string): string {
  const base = name.endsWith(".iso") ? name.slice(0, -4) : name;
  if (!base || base.includes("/") || base === "." || base === ".." || /[\x00-\x1f]/.test(base)) {
    throw new KairosError(
      `ISO name '${name}' is not a plain file name`,
      "use a name like 'kairos' (no slashes)",
    );
  }
  return base;
}

/** Make sure `dir` exists (created if needed) and we can write into it, before any work. */
export async function ensureWritableDir(dir: string, what = "output directory"): Promise<string> {
  const abs = resolve(dir);
  try {
    await mkdir(abs, { recursive: true });
  } catch (err) {
    throw new KairosError(
      `cannot create ${what} ${abs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      "choose a directory you can write to",
    );
  }
  const st = await lstat(abs);
  if (!st.isDirectory()) throw new KairosError(`${what} ${abs} is not a directory`, "choose a directory");
  try {
    await access(abs, constants.W_OK | constants.X_OK);
  } catch {
    throw new KairosError(`${what} ${abs} is not writable`, "choose a directory you can write to");
  }
  return abs;
}

export interface IsoBuildOptions {
  rootfs: RootfsSource;
  outDir: string;
  /** Base name without .iso (default: from kairos-release, else "kairos"). */
  name?: string;
  /** Path of a #cloud-config to validate and embed as /config.yaml. */
  cloudConfigFile?: string;
  /** Already validated cloud-config (used instead of cloudConfigFile). */
  cloudConfig?: MediaCloudConfig;
  overlayIso?: string;
  overlayRootfs?: string;
  label?: string;
  grub?: GrubMenuOptions;
  squashfs?: SquashfsOptions;
  progress?: Progress;
  signal?: AbortSignal;
  /**
   * Called with the live kernel, initrd and squashfs after the ISO is in place and before the
   * work directory is removed (AuroraBoot hardlinks them into its netboot directory).
   */
  keepLive?: (live: LiveArtifacts) => Promise<void>;
}

export interface IsoBuildResult {
  iso: string;
  sha256: string;
  checksumFile: string;
  size: number;
  name: string;
  release: Record<string, string>;
  imageKernel: string;
  imageInitrd: string;
  cloudConfig?: string;
  seconds: number;
}

/**
 * Build a hybrid live ISO from a rootfs tar stream. Inputs are checked first (cloud-config,
 * overlays, output directory); the work happens in a hidden temp directory inside the output
 * directory and the ISO and its .sha256 are renamed into place only at the end, so a failure
 * (bad image, full disk, Ctrl-C) leaves no partial ISO behind.
 */
export async function buildIso(opts: IsoBuildOptions): Promise<IsoBuildResult> {
  const t0 = Date.now();
  const cloudConfig =
    opts.cloudConfig ?? (opts.cloudConfigFile ? await loadCloudConfig(opts.cloudConfigFile) : undefined);
  for (const w of cloudConfig?.warnings ?? []) opts.progress?.info(w);
  if (opts.overlayIso) await checkOverlayIso(opts.overlayIso);
  if (opts.overlayRootfs) await checkOverlayDir(opts.overlayRootfs, "rootfs overlay");
  const explicitName = opts.name !== undefined ? checkIsoName(opts.name) : undefined;
  const outDir = await ensureWritableDir(opts.outDir);
  const work = await mkdtemp(join(outDir, ".kairos-iso-"));
  const cleanup = () => rm(work, { recursive: true, force: true });
  const onAbort = () => void cleanup();
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    // Both option types carry every LiveOptions field but the work directory.
    const live = await buildLiveArtifacts({ ...opts, dir: work });
    const name = explicitName ?? isoNameFromRelease(live.release);
    const tmpIso = join(work, `${name}.iso`);
    // Known before xorriso starts: the three big files are nearly all of the medium.
    let expected = 0;
    for (const f of [live.kernel, live.initrd, live.squashfs]) expected += (await stat(f)).size;
    const task = opts.progress?.task("iso (xorriso)", expected, "bytes");
    const written = await assembleIso({
      kernel: live.kernel,
      initrd: live.initrd,
      squashfs: live.squashfs,
      cloudConfig: cloudConfig?.text,
      overlayIso: opts.overlayIso,
      label: opts.label ?? LIVE_LABEL,
      grub: opts.grub,
      workDir: work,
      out: tmpIso,
      // The total is the files' sizes, known before xorriso starts; the real size replaces
      // it at the end (file system metadata and padding add a little).
      onBytes: task ? (n, expected) => task.update(n, Math.max(n, expected)) : undefined,
      signal: opts.signal,
    }).catch((err: unknown) => {
      task?.fail(err instanceof Error ? err.message.split("\n")[0]! : String(err));
      throw err;
    });
    const sumTmp = join(work, `${name}.iso.sha256`);
    // assembleIso hashed the ISO while writing it: no second read of ~250 MB.
    const sha256 = await writeChecksum(tmpIso, sumTmp, written.sha256);
    const size = written.size;
    task?.update(size, size);
    task?.finish(`${(size / 1048576).toFixed(0)} MiB`);
    const iso = join(outDir, `${name}.iso`);
    await rename(tmpIso, iso);
    await rename(sumTmp, `${iso}.sha256`);
    await opts.keepLive?.(live);
    return {
      iso,
      sha256,
      checksumFile: `${iso}.sha256`,
      size,
      name,
      release: live.release,
      imageKernel: live.imageKernel,
      imageInitrd: live.imageInitrd,
      cloudConfig: cloudConfig?.file,
      seconds: (Date.now() - t0) / 1000,
    };
  } catch (err) {
    throw await explainIoError(err, outDir);
  } finally {
    opts.signal?.removeEventListener("abort", onAbort);
    await cleanup();
  }
}

async function checkOverlayDir(dir: string, what: string): Promise<void> {
  const st = await lstat(dir).catch(() => undefined);
  if (!st) throw new KairosError(`${what} ${dir} does not exist`, "pass an existing directory");
  if (!st.isDirectory()) throw new KairosError(`${what} ${dir} is not a directory`, "pass a directory");
}

/**
 * Turn "no space left" into one clear message. Tools word it differently (tar2sqfs says
 * "I/O error"), so a failure while the output filesystem is (nearly) full counts too.
 * Called before the temp directory is removed, while the partial files still take the space.
 */
async function explainIoError(err: unknown, outDir: string): Promise<unknown> {
  const text = err instanceof Error ? err.message : String(err);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  let full = false;
  try {
    const fs = await statfs(outDir);
    full = fs.bavail * fs.bsize < 8 * 1024 * 1024;
  } catch {
    // cannot tell; rely on the message
  }
  if (code === "ENOSPC" || full || /No space left on device|ENOSPC|disk full/i.test(text)) {
    return new KairosError(
      `no space left on the device holding ${outDir}; the partial ISO was removed`,
      "free some space or choose another output directory (-o)",
      { cause: err },
    );
  }
  return err;
}

export interface NetbootBuildOptions {
  rootfs: RootfsSource;
  outDir: string;
  /** Base URL the squashfs will be served from (default http://SERVER:8080, to be filled in). */
  baseUrl?: string;
  /** Extra kernel arguments (AuroraBoot's netboot.cmdline is appended to ours). */
  extraCmdline?: string;
  /** Embed this cloud-config beside the files as config.yaml. */
  cloudConfigFile?: string;
  overlayRootfs?: string;
  squashfs?: SquashfsOptions;
  progress?: Progress;
  signal?: AbortSignal;
}

export interface NetbootFiles {
  kernel: string;
  initrd: string;
  squashfs: string;
  cmdlineFile: string;
  cmdline: string;
  config?: string;
  release: Record<string, string>;
}

/**
 * Netboot files by the same code path as the ISO: `<name>-kernel`, `<name>-initrd`,
 * `<name>.squashfs` (AuroraBoot's names, default name "kairos") and `<name>-cmdline`, the
 * kernel command line that fetches the squashfs over HTTP. Files land in place only at the end.
 */
export async function buildNetbootFiles(
  opts: NetbootBuildOptions & { name?: string },
): Promise<NetbootFiles> {
  const cloudConfig = opts.cloudConfigFile ? await loadCloudConfig(opts.cloudConfigFile) : undefined;
  if (opts.overlayRootfs) await checkOverlayDir(opts.overlayRootfs, "rootfs overlay");
  const outDir = await ensureWritableDir(opts.outDir);
  const work = await mkdtemp(join(outDir, ".kairos-netboot-"));
  try {
    // Both option types carry every LiveOptions field but the work directory.
    const live = await buildLiveArtifacts({ ...opts, dir: work });
    const name = opts.name !== undefined ? checkIsoName(opts.name) : "kairos";
    const base = (opts.baseUrl ?? "http://{{ server }}:8080").replace(/\/+$/, "");
    const cmdline = netbootCmdline(`${base}/${name}.squashfs`, opts.extraCmdline ?? "");
    const files = {
      kernel: join(outDir, `${name}-kernel`),
      initrd: join(outDir, `${name}-initrd`),
      squashfs: join(outDir, `${name}.squashfs`),
      cmdlineFile: join(outDir, `${name}-cmdline`),
    };
    await writeFile(join(work, "cmdline"), `${cmdline}\n`);
    let config: string | undefined;
    if (cloudConfig) {
      await writeFile(join(work, "config.yaml"), cloudConfig.text);
      config = join(outDir, "config.yaml");
    }
    await rename(live.kernel, files.kernel);
    await rename(live.initrd, files.initrd);
    await rename(live.squashfs, files.squashfs);
    await rename(join(work, "cmdline"), files.cmdlineFile);
    if (config) await rename(join(work, "config.yaml"), config);
    return { ...files, cmdline, config, release: live.release };
  } catch (err) {
    throw await explainIoError(err, outDir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
