import { flattenEntries } from "../oci/flatten.js";
import { appendLayer, editConfig, type Image, openImage, writeImage } from "../oci/index.js";
import { formatBytes, KairosError, type Progress, type Task } from "../sys/index.js";
import type { TarEntry } from "../tar/types.js";
import type { WriteEntry } from "../tar/writer.js";
import { writeTar } from "../tar/writer.js";
import { VERSION } from "../version.js";
import { type DoctorReport, doctor, readOsRelease } from "./doctor.js";
import { enableLinks, type FrameworkFile, frameworkFiles, layerEntries } from "./framework.js";
import { type IdentityOptions, identityFiles } from "./identity.js";
import { buildInitramfs, type Compression, type InitramfsResult } from "./initramfs.js";
import { ModuleSpill, setAsideModules } from "./module-spill.js";
import { keepFactoryFiles, type RootfsView, TarView } from "./rootfs-view.js";

const EMPTY: AsyncIterable<Buffer> = { async *[Symbol.asyncIterator]() {} };

/**
 * Flattened entries of an image as TarEntry (the shape the factory's views read).
 * `onBytes` hears the running count of compressed layer bytes read.
 */
export async function* imageEntries(
  image: Image,
  onBytes?: (done: number) => void,
): AsyncGenerator<TarEntry> {
  for await (const e of flattenEntries(image, { onBytes: onBytes && ((ev) => onBytes(ev.done)) })) {
    const body = e.body;
    yield {
      ...e.header,
      body:
        body === undefined
          ? EMPTY
          : body instanceof Uint8Array
            ? (async function* () {
                yield Buffer.from(body);
              })()
            : (body as AsyncIterable<Buffer>),
    };
  }
}

/** Keep what doctor and init read, plus the names under /etc/ssh (host keys are removed by init). */
const keepForInit = (path: string, size: number) => keepFactoryFiles(path, size);

/** A view of an image's final rootfs (one read of its layers). */
export async function imageView(image: Image, onBytes?: (done: number) => void): Promise<TarView> {
  return TarView.fromEntries(imageEntries(image, onBytes), keepForInit);
}

/**
 * A task for one full read of an image's layers, against their compressed size from the
 * manifest, and the byte callback that moves it (capped: a layer read twice for hardlinks
 * must not push the bar past its end).
 */
export async function imageReadTask(
  progress: Progress | undefined,
  name: string,
  image: Image,
): Promise<{ task?: Task; onBytes?: (done: number) => void }> {
  if (!progress) return {};
  const total = (await image.layers()).reduce((sum, l) => sum + l.size, 0);
  const task = progress.task(name, total, "bytes");
  return { task, onBytes: (n) => task.update(Math.min(n, total)) };
}

/** Contract check of an image reference (any transport). */
export async function doctorImage(ref: string, progress?: Progress): Promise<DoctorReport> {
  const image = await openImage(ref);
  try {
    const { task, onBytes } = await imageReadTask(progress, `reading ${ref}`, image);
    const view = await imageView(image, onBytes);
    task?.finish();
    return await doctor(view);
  } finally {
    await image.close();
  }
}

export interface InitOptions extends IdentityOptions {
  /** Host path of the agent executable (default: scripts/build-agent, cached). */
  agent?: string;
  /** Kernel modules for the initramfs instead of the default set. */
  modules?: string[];
  compression?: Compression;
  progress?: Progress;
  signal?: AbortSignal;
}

export interface InitResult {
  digest: string;
  report: DoctorReport;
  initramfs: Omit<InitramfsResult, "data"> & { bytes: number };
  layerFiles: string[];
}

/** Refuse a base that fails the contract, naming every failed requirement. */
export function assertContract(report: DoctorReport, name: string): void {
  if (report.ok) return;
  const fails = report.findings.filter((f) => f.severity === "fail");
  throw new KairosError(
    `${name} does not meet the Kairos contract: ${fails.map((f) => `${f.id}: ${f.message}`).join("; ")}`,
    `${fails
      .map((f) => f.fix)
      .filter(Boolean)
      .join("; ")} (details: kairos doctor ${name})`,
  );
}

/**
 * The framework layer for a checked base: framework files, enable links, identity, the
 * universal initramfs and the /boot/vmlinuz and /boot/initrd links, whiteouts for baked-in
 * SSH host keys.
 */
export async function frameworkLayer(
  view: RootfsView,
  report: DoctorReport,
  initrd: InitramfsResult,
  opts: InitOptions,
): Promise<{ entries: AsyncGenerator<WriteEntry>; files: string[]; bytes: number }> {
  const os = await readOsRelease(view);
  if (!os) throw new KairosError("the base has no os-release");
  const ids = identityFiles(os.text, opts, os.file);
  const kernel = report.kernel!;
  const files: FrameworkFile[] = await frameworkFiles({ agent: opts.agent, fips: opts.fips });
  files.push(...enableLinks());
  const text = (path: string, s: string, mode = 0o644): FrameworkFile => {
    const content = Buffer.from(s);
    return { path, type: "file", mode, content, size: content.length };
  };
  files.push(text("/etc/os-release", ids.osRelease), text("/etc/kairos-release", ids.kairosRelease));
  files.push({
    path: `/boot/initrd-${kernel.version}`,
    type: "file",
    mode: 0o644,
    content: initrd.data,
    size: initrd.data.length,
  });
  files.push({
    path: "/boot/initrd",
    type: "symlink",
    mode: 0o777,
    size: 0,
    linkname: `initrd-${kernel.version}`,
  });
  const vmlinuz = kernel.image.startsWith("/boot/")
    ? kernel.image.slice("/boot/".length)
    : `..${kernel.image}`;
  files.push({ path: "/boot/vmlinuz", type: "symlink", mode: 0o777, size: 0, linkname: vmlinuz });
  // Whiteouts: every node must make its own SSH host identity.
  const t = 0;
  const whiteouts: WriteEntry[] = (await view.list("/etc/ssh"))
    .filter((n) => /^ssh_host_.*_key(\.pub)?$/.test(n))
    .map((n) => ({
      header: {
        path: `etc/ssh/.wh.${n}`,
        type: "file" as const,
        mode: 0o600,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: t,
      },
      body: new Uint8Array(0),
    }));
  const exists = async (p: string) => (await view.lstat(p))?.type === "directory" || (await view.exists(p));
  return {
    entries: layerEntries(files, exists, whiteouts),
    files: [...files.map((f) => f.path), ...whiteouts.map((w) => `/${w.header.path}`)],
    /** Content bytes of the layer's files: the total its progress counts against. */
    bytes: files.reduce((sum, f) => sum + (f.type === "file" ? f.size : 0), 0),
  };
}

/**
 * appendLayer's byte callback for a framework layer's task: the tar stream's count (content
 * plus headers) capped at the content bytes, the total the task was given.
 */
export function layerBytesTo(task: Task | undefined, total: number): ((n: number) => void) | undefined {
  if (!task) return undefined;
  task.update(0, total);
  return (n) => task.update(Math.min(n, total));
}

/**
 * One read of the base: the view for the contract check and the module indexes, with the kernel
 * modules set aside on disk as they pass, so the universal initramfs needs no second read.
 * A base that fails the contract, or an invalid identity option, is refused here, before
 * anything expensive.
 */
async function checkAndBuildInitramfs(
  image: Image,
  base: string,
  opts: InitOptions,
): Promise<{
  view: TarView;
  report: DoctorReport;
  os: NonNullable<Awaited<ReturnType<typeof readOsRelease>>>;
  initrd: InitramfsResult;
}> {
  const spill = await ModuleSpill.create();
  try {
    const { task: t1, onBytes: read1 } = await imageReadTask(opts.progress, "check the base", image);
    const view = await TarView.fromEntries(setAsideModules(imageEntries(image, read1), spill), keepForInit);
    const report = await doctor(view);
    if (!report.ok) t1?.fail("contract not met");
    assertContract(report, base);
    t1?.finish(`${report.family}, kernel ${report.kernel!.version}`);
    const os = (await readOsRelease(view))!;
    identityFiles(os.text, opts, os.file);

    const t2 = opts.progress?.task("universal initramfs");
    const initrd = await buildInitramfs({
      view,
      kernel: report.kernel!,
      modules: opts.modules,
      compression: opts.compression,
      // Set aside by path as it was in the stream: resolved through the view's symlinks.
      readModule: async (p) => spill.read((await view.realpath(p)) ?? p),
    });
    t2?.finish(`${formatBytes(initrd.data.length)} ${initrd.compression}, ${initrd.modules.length} modules`);
    return { view, report, os, initrd };
  } finally {
    await spill.close();
  }
}

/**
 * `kairos init BASE -o OUT`: check the base, then write the base's layers untouched plus one
 * framework layer to OUT. A base that fails the contract is refused before anything is written.
 */
export async function kairosInit(base: string, out: string, opts: InitOptions = {}): Promise<InitResult> {
  const progress = opts.progress;
  // A registry's blobs are cached for the command: the read below and the copy of the base's
  // layers into OUT fetch each blob once.
  const image = await openImage(base, { signal: opts.signal, cacheBlobs: true });
  try {
    const { view, report, os, initrd } = await checkAndBuildInitramfs(image, base, opts);
    const t3 = progress?.task("framework layer", undefined, "bytes");
    const layer = await frameworkLayer(view, report, initrd, opts);
    const withLayer = await appendLayer(image, writeTar(layer.entries), {
      signal: opts.signal,
      onBytes: layerBytesTo(t3, layer.bytes),
      history: {
        created_by: `kairos init (kairos-ts ${VERSION})`,
        comment: "Kairos framework, identity, initramfs",
      },
    });
    t3?.finish();
    const identity = identityFiles(os.text, opts, os.file).identity;
    const labels = Object.fromEntries(
      identity.fields
        .filter(([k]) => ["KAIROS_NAME", "KAIROS_VERSION", "KAIROS_FLAVOR", "KAIROS_VARIANT"].includes(k))
        .map(([k, v]) => [`io.kairos.${k.slice("KAIROS_".length).toLowerCase()}`, v]),
    );
    const final = await editConfig(withLayer, {
      labels: { ...labels, "io.kairos.framework": `kairos-ts ${VERSION}` },
    });
    try {
      const t4 = progress?.task(`write ${out}`);
      const digest = await writeImage(final, out, { progress, signal: opts.signal });
      t4?.finish(digest);
      const initramfs = {
        bytes: initrd.data.length,
        uncompressedSize: initrd.uncompressedSize,
        compression: initrd.compression,
        kernelVersion: initrd.kernelVersion,
        modules: initrd.modules,
        builtin: initrd.builtin,
        notFound: initrd.notFound,
      };
      return { digest, report, initramfs, layerFiles: layer.files };
    } finally {
      await final.close();
    }
  } finally {
    await image.close();
  }
}

/** `kairos framework export DEST`: the framework alone, as a one-layer image FROM scratch. */
export async function exportFramework(
  dest: string,
  opts: { agent?: string; fips?: boolean; progress?: Progress; signal?: AbortSignal } = {},
): Promise<{ digest: string; files: string[] }> {
  const { emptyImage } = await import("../oci/index.js");
  const files = await frameworkFiles({ agent: opts.agent, fips: opts.fips });
  const scratch = emptyImage();
  const img = await appendLayer(scratch, writeTar(layerEntries(files)), {
    signal: opts.signal,
    history: { created_by: `kairos framework export (kairos-ts ${VERSION}${opts.fips ? ", fips" : ""})` },
  });
  const labelled = await editConfig(img, {
    labels: {
      "io.kairos.framework": `kairos-ts ${VERSION}`,
      "io.kairos.framework.flavor": opts.fips ? "fips" : "generic",
    },
  });
  try {
    const digest = await writeImage(labelled, dest, { progress: opts.progress, signal: opts.signal });
    return { digest, files: files.map((f) => f.path) };
  } finally {
    await labelled.close();
  }
}
