import type { Command } from "commander";
import { unpackToDirectory } from "../../oci/flatten.js";
import {
  applyConfigEdit,
  BuiltImage,
  type ConfigEdit,
  copyIndex,
  editConfig,
  formatPlatform,
  type Image,
  type ImageReference,
  openImage,
  openRootfsDir,
  parseCreds,
  parsePlatform,
  parseReference,
  TRANSPORTS,
  writeImage,
} from "../../oci/index.js";
import { formatBytes, KairosError, type Progress, type Task } from "../../sys/index.js";
import { action, type GlobalOptions, globals, output, progressFor, type Register } from "../common.js";

interface ImageOptions extends GlobalOptions {
  platform?: string;
  insecure?: boolean;
  creds?: string;
  srcCreds?: string;
  destCreds?: string;
  chunkSize?: string;
  all?: boolean;
}

function withRemoteOptions(cmd: Command): Command {
  return cmd
    .option("--platform <os/arch[/variant]>", "image to pick from a multi-platform index", "linux/amd64")
    .option(
      "--insecure",
      "allow plain-HTTP registries and unverified TLS (loopback hosts may always use HTTP)",
    )
    .option("--creds <user:pass>", "registry credentials (default: from ~/.docker/config.json or auth.json)");
}

function remoteOpts(o: ImageOptions, signal: AbortSignal) {
  return {
    platform: parsePlatform(o.platform ?? "linux/amd64"),
    insecure: o.insecure ?? false,
    ...(o.creds ? { creds: parseCreds(o.creds) } : {}),
    ...(o.srcCreds ? { srcCreds: parseCreds(o.srcCreds) } : {}),
    ...(o.destCreds ? { destCreds: parseCreds(o.destCreds) } : {}),
    ...(o.chunkSize ? { chunkSize: parseSize(o.chunkSize) } : {}),
    signal,
  };
}

function parseSize(s: string): number {
  const m = /^(\d+)([KMG]i?B?)?$/i.exec(s);
  if (!m) throw new KairosError(`invalid size '${s}'`, "use bytes or a suffix: 512K, 16M");
  const mult = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[(m[2] ?? "").charAt(0).toUpperCase()] ?? 1;
  const n = Number(m[1]) * mult;
  if (n < 1024) throw new KairosError(`chunk size ${s} is too small`, "use at least 1K");
  return n;
}

/** An abort signal tripped by Ctrl-C, so partial outputs are cleaned up. */
function interruptSignal(): AbortSignal {
  const ac = new AbortController();
  process.once("SIGINT", () => ac.abort(new KairosError("interrupted")));
  return ac.signal;
}

/** Destinations given without a transport are OCI layout directories. */
function destination(dest: string): ImageReference {
  const m = /^([a-z-]+):/.exec(dest);
  if (m && (TRANSPORTS as readonly string[]).includes(m[1]!)) return parseReference(dest);
  if (dest.includes("://")) return parseReference(dest);
  return { transport: "oci", path: dest };
}

/** Set the tag/name of a destination from --tag when it has none. */
function withTag(ref: ImageReference, tag: string | undefined): ImageReference {
  if (!tag) return ref;
  switch (ref.transport) {
    case "oci":
    case "oci-archive":
      if (ref.tag && ref.tag !== tag)
        throw new KairosError(`destination already has tag '${ref.tag}', --tag says '${tag}'`);
      return { ...ref, tag };
    case "docker-archive":
      return { ...ref, name: ref.name ?? tag };
    case "docker":
      if (ref.ref.tag && ref.ref.tag !== "latest" && ref.ref.tag !== tag) {
        throw new KairosError(`destination already has tag '${ref.ref.tag}', --tag says '${tag}'`);
      }
      return { ...ref, ref: { ...ref.ref, tag } };
    default:
      return ref;
  }
}

/** Parse "k=v". */
function keyValue(s: string, what: string): [string, string] {
  const i = s.indexOf("=");
  if (i <= 0)
    throw new KairosError(`invalid ${what} '${s}'`, `use ${what === "label" ? "KEY=VALUE" : "NAME=VALUE"}`);
  return [s.slice(0, i), s.slice(i + 1)];
}

/** An entrypoint/cmd: a JSON array, or one string taken as a single argument. */
function argv(s: string, what: string): string[] {
  if (s.trim().startsWith("[")) {
    let v: unknown;
    try {
      v = JSON.parse(s);
    } catch (e) {
      throw new KairosError(`--${what} is not a valid JSON array: ${(e as Error).message}`);
    }
    if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
      throw new KairosError(`--${what} must be a JSON array of strings`);
    }
    return v as string[];
  }
  return [s];
}

const collectValues = (v: string, prev: string[] = []) => [...prev, v];

async function describe(image: Image) {
  const manifest = await image.manifest();
  const config = await image.config();
  const layers = await image.layers();
  return {
    name: image.name,
    digest: await image.digest(),
    mediaType: image.mediaType(),
    platform: formatPlatform({ os: config.os, architecture: config.architecture, variant: config.variant }),
    created: config.created,
    config: {
      digest: manifest.config.digest,
      size: manifest.config.size,
      mediaType: manifest.config.mediaType,
    },
    env: config.config?.Env ?? [],
    entrypoint: config.config?.Entrypoint ?? null,
    cmd: config.config?.Cmd ?? null,
    labels: config.config?.Labels ?? {},
    layers: layers.map((l) => ({ digest: l.digest, diffId: l.diffId, size: l.size, mediaType: l.mediaType })),
    size: layers.reduce((n, l) => n + l.size, manifest.config.size),
    index: image instanceof BuiltImage ? (image.index ?? null) : null,
  };
}

function humanDescription(d: Awaited<ReturnType<typeof describe>>): string {
  const lines = [
    `Name:        ${d.name}`,
    `Digest:      ${d.digest}`,
    `MediaType:   ${d.mediaType}`,
    `Platform:    ${d.platform}`,
    `Created:     ${d.created ?? "-"}`,
    `Config:      ${d.config.digest} (${formatBytes(d.config.size)})`,
    `Entrypoint:  ${JSON.stringify(d.entrypoint)}`,
    `Cmd:         ${JSON.stringify(d.cmd)}`,
    `Env:         ${d.env.length ? d.env.join("\n             ") : "-"}`,
    `Labels:      ${
      Object.entries(d.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join("\n             ") || "-"
    }`,
    ...(d.index ? [`Index:       ${d.index.digest} (platforms: ${d.index.platforms.join(", ")})`] : []),
    `Layers:      ${d.layers.length}, ${formatBytes(d.size)} in total`,
    ...d.layers.map(
      (l, i) =>
        `  ${String(i + 1).padStart(2)}. ${l.digest}  ${formatBytes(l.size).padStart(10)}  ${l.mediaType}`,
    ),
  ];
  return lines.join("\n");
}

async function copyWithProgress(
  src: string,
  dest: ImageReference,
  o: ImageOptions,
  progress: Progress,
): Promise<{ digest: string; layers?: number; size?: number; images?: number }> {
  const signal = interruptSignal();
  const opts = remoteOpts(o, signal);
  if (o.all) {
    progress.info(`copying every platform of ${src} to ${formatDest(dest)}`);
    return copyIndex(src, dest, { ...opts, progress });
  }
  const image = await openImage(src, { ...opts, creds: opts.srcCreds ?? opts.creds });
  try {
    const layers = await image.layers();
    progress.info(
      `copying ${image.name} (${layers.length} layer${layers.length === 1 ? "" : "s"}) to ${formatDest(dest)}`,
    );
    const digest = await writeImage(image, dest, { ...opts, creds: opts.destCreds ?? opts.creds, progress });
    return { digest, layers: layers.length, size: layers.reduce((n, l) => n + l.size, 0) };
  } finally {
    await image.close();
  }
}

function formatDest(r: ImageReference): string {
  switch (r.transport) {
    case "docker":
      return `docker://${r.ref.registry}/${r.ref.repository}${r.ref.tag ? `:${r.ref.tag}` : ""}`;
    case "oci":
    case "oci-archive":
      return `${r.transport}:${r.path}${r.tag ? `:${r.tag}` : ""}`;
    case "docker-archive":
      return `docker-archive:${r.path}${r.name ? `:${r.name}` : ""}`;
    case "docker-daemon":
      return `docker-daemon:${r.name}`;
    case "dir":
      return `dir:${r.path}`;
  }
}

function done(
  o: ImageOptions,
  dest: ImageReference,
  r: { digest: string; layers?: number; size?: number; images?: number },
) {
  output(o, { destination: formatDest(dest), ...r }, () => `${formatDest(dest)} ${r.digest}`);
}

export const registerImage: Register = (program) => {
  const image = program
    .command("image")
    .description(
      `work with container images (transports: ${TRANSPORTS.map((t) => (t === "docker" ? "docker://" : `${t}:`)).join(" ")})`,
    );

  withRemoteOptions(
    image
      .command("pull")
      .option("--all", "copy every platform of an index and the index itself (docker://, oci:, oci-archive:)")
      .description(
        "copy an image to a local OCI layout (DEST without a transport), oci-archive: or docker-archive:",
      )
      .argument("<ref>", "source image, e.g. docker://registry.example/os/debian:12")
      .argument(
        "<dest>",
        "destination: DIR, oci:DIR[:TAG], oci-archive:FILE[:TAG], docker-archive:FILE[:NAME:TAG]",
      ),
  ).action(
    action(async (ref: string, destArg: string, _o: ImageOptions, cmd: Command) => {
      const o = globals(cmd) as ImageOptions;
      const dest = destination(destArg);
      if (dest.transport === "docker" || dest.transport === "dir") {
        throw new KairosError(
          `pull writes local images; ${destArg} is not one`,
          "use 'kairos image copy' or 'push'",
        );
      }
      done(o, dest, await copyWithProgress(ref, dest, o, progressFor(o)));
    }),
  );

  withRemoteOptions(
    image
      .command("inspect")
      .description("show an image's manifest, config and layers")
      .argument("<ref>", "image reference")
      .option("--raw", "print the manifest exactly as stored")
      .option("--config", "print the config exactly as stored"),
  ).action(
    action(async (ref: string, _o: unknown, cmd: Command) => {
      const o = globals(cmd) as ImageOptions & { raw?: boolean; config?: boolean };
      const img = await openImage(ref, remoteOpts(o, interruptSignal()));
      try {
        if (o.raw || o.config) {
          const bytes = o.raw ? await img.rawManifest() : await img.rawConfig();
          process.stdout.write(bytes);
          if (process.stdout.isTTY) process.stdout.write("\n");
          return;
        }
        const d = await describe(img);
        output(o, d, () => humanDescription(d));
      } finally {
        await img.close();
      }
    }),
  );

  withRemoteOptions(
    image
      .command("unpack")
      .description(
        "apply an image's layers onto a directory (whiteouts applied, nothing written outside DIR)",
      )
      .argument("<ref>", "image reference")
      .argument(
        "<dir>",
        "target directory: new or empty (staged beside it, renamed into place when verified)",
      ),
  ).action(
    action(async (ref: string, dir: string, _o: unknown, cmd: Command) => {
      const o = globals(cmd) as ImageOptions;
      const progress = progressFor(o);
      const img = await openImage(ref, remoteOpts(o, interruptSignal()));
      try {
        const layers = await img.layers();
        // One bar per layer, against the blob's size from the manifest: the compressed bytes
        // read are counted, so the bar moves while the layer's files are written.
        const tasks = new Map<number, { task: Task; done: number }>();
        const stats = await unpackToDirectory(img, dir, {
          onLayer: (e) => {
            if (e.phase === "start") {
              const name = `layer ${e.layer + 1}/${layers.length} ${e.digest.slice(0, 19)}`;
              tasks.set(e.layer, { task: progress.task(name, layers[e.layer]!.size, "bytes"), done: 0 });
            } else tasks.get(e.layer)?.task.finish();
          },
          onBytes: (e) => {
            const t = tasks.get(e.layer);
            if (!t) return;
            t.done += e.bytes;
            t.task.update(t.done);
          },
        }).catch((err: unknown) => {
          // The layer being written fails with the error (finished ones keep their ✔).
          for (const t of tasks.values())
            t.task.fail(err instanceof Error ? err.message.split("\n")[0]! : String(err));
          throw err;
        });
        output(
          o,
          { image: img.name, dir, digest: await img.digest(), ...stats },
          () =>
            `unpacked ${img.name} into ${dir}: ${stats.entries} entries, ${formatBytes(stats.bytes)}` +
            (stats.skippedDevices ? `, ${stats.skippedDevices} device nodes skipped (not root)` : ""),
        );
      } finally {
        await img.close();
      }
    }),
  );

  withRemoteOptions(
    image
      .command("from-rootfs")
      .description("make an image with one layer from a root filesystem directory (FROM scratch, ADD . /)")
      .argument("<dir>", "root filesystem directory (DIR or dir:DIR)")
      .argument(
        "<dest>",
        "destination reference (DIR = OCI layout, oci-archive:, docker-archive:, docker://)",
      )
      .option("--tag <tag>", "tag (or docker-archive name) when DEST has none")
      .option("--label <key=value>", "add a label (repeatable)", collectValues)
      .option("--env <NAME=VALUE>", "set an environment variable (repeatable)", collectValues)
      .option("--entrypoint <json-array|string>", "entrypoint, e.g. '[\"/sbin/init\"]'")
      .option("--cmd <json-array|string>", "default command"),
  ).action(
    action(async (dir: string, destArg: string, _o: unknown, cmd: Command) => {
      const o = globals(cmd) as ImageOptions & {
        tag?: string;
        label?: string[];
        env?: string[];
        entrypoint?: string;
        cmd?: string;
      };
      const dest = withTag(destination(destArg), o.tag);
      const edit: ConfigEdit = {};
      if (o.label?.length) edit.labels = Object.fromEntries(o.label.map((l) => keyValue(l, "label")));
      if (o.env?.length) edit.env = o.env.map((e) => keyValue(e, "env").join("="));
      if (o.entrypoint !== undefined) edit.entrypoint = argv(o.entrypoint, "entrypoint");
      if (o.cmd !== undefined) edit.cmd = argv(o.cmd, "cmd");
      // Validate the edits before the (possibly long) packing of the directory.
      applyConfigEdit({ architecture: "", os: "", rootfs: { type: "layers", diff_ids: [] } }, edit);
      const signal = interruptSignal();
      const opts = remoteOpts(o, signal);
      const progress = progressFor(o);
      const task = progress.task(`pack ${dir}`, undefined, "bytes");
      let base: Image;
      try {
        // `dir:DIR` is the same source as for copy and build; a bare path is the directory itself.
        const rootfs = dir.startsWith("dir:") ? dir.slice(4) : dir;
        base = await openRootfsDir(rootfs, {
          platform: opts.platform,
          signal,
          onBytes: (n) => task.update(n),
        });
        const l = (await base.layers())[0]!;
        task.finish(`${formatBytes(l.size)} compressed`);
      } catch (e) {
        task.fail((e as Error).message);
        throw e;
      }
      const img = Object.keys(edit).length ? await editConfig(base, edit) : base;
      try {
        const digest = await writeImage(img, dest, { ...opts, progress });
        const layers = await img.layers();
        done(o, dest, { digest, layers: layers.length, size: layers.reduce((n, l) => n + l.size, 0) });
      } finally {
        await img.close();
      }
    }),
  );

  withRemoteOptions(
    image
      .command("push")
      .option("--all", "copy every platform of an index and the index itself (docker://, oci:, oci-archive:)")
      .description("push an image to a registry (existing blobs skipped, same-registry blobs mounted)")
      .argument("<src>", "source image reference")
      .argument("<dest>", "docker://HOST/REPO[:TAG]")
      .option(
        "--chunk-size <size>",
        "upload in PATCH chunks of this size (e.g. 16M) instead of one PUT per blob",
      ),
  ).action(
    action(async (src: string, destArg: string, _o: unknown, cmd: Command) => {
      const o = globals(cmd) as ImageOptions;
      const dest = parseReference(destArg);
      if (dest.transport !== "docker")
        throw new KairosError(`push needs a docker:// destination, got ${destArg}`);
      done(o, dest, await copyWithProgress(src, dest, o, progressFor(o)));
    }),
  );

  withRemoteOptions(
    image
      .command("copy")
      .option("--all", "copy every platform of an index and the index itself (docker://, oci:, oci-archive:)")
      .description("copy an image between any two transports without unpacking (blobs streamed and verified)")
      .argument("<src>", "source image reference")
      .argument("<dest>", "destination image reference")
      .option("--src-creds <user:pass>", "credentials for the source registry")
      .option("--dest-creds <user:pass>", "credentials for the destination registry")
      .option("--chunk-size <size>", "registry uploads in PATCH chunks of this size"),
  ).action(
    action(async (src: string, destArg: string, _o: unknown, cmd: Command) => {
      const o = globals(cmd) as ImageOptions;
      const dest = destination(destArg);
      done(o, dest, await copyWithProgress(src, dest, o, progressFor(o)));
    }),
  );
};
