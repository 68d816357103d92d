import { createWriteStream } from "node:fs";
import { access, constants } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { KairosError } from "../sys/index.js";
import { openDockerArchive, writeDockerArchive } from "./archive.js";
import { readBody, request } from "./http.js";
import type { BuiltImage } from "./image.js";
import { makeTempDir } from "./tmp.js";
import type { Image } from "./types.js";
import type { TransferOptions } from "./util.js";

/** Candidate daemon sockets: $DOCKER_HOST (unix://), Docker's, then Podman's (rootful, rootless). */
export function daemonSockets(env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  if (env.DOCKER_HOST) {
    if (!env.DOCKER_HOST.startsWith("unix://")) {
      throw new KairosError(
        `DOCKER_HOST=${env.DOCKER_HOST} is not a unix socket`,
        "only unix:// daemon sockets are supported (set DOCKER_HOST=unix:///path/to.sock)",
      );
    }
    return [env.DOCKER_HOST.slice("unix://".length)];
  }
  out.push("/var/run/docker.sock", "/run/podman/podman.sock");
  if (env.XDG_RUNTIME_DIR) out.push(join(env.XDG_RUNTIME_DIR, "podman", "podman.sock"));
  return out;
}

/** The first daemon socket that exists, or a clear error listing what was tried. */
export async function findDaemonSocket(env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const tried = daemonSockets(env);
  for (const s of tried) {
    try {
      await access(s, constants.W_OK);
      return s;
    } catch {
      // try the next one
    }
  }
  throw new KairosError(
    `no Docker or Podman daemon socket found (tried ${tried.join(", ")})`,
    "start the daemon (e.g. 'podman system service') or set DOCKER_HOST=unix:///path/to.sock",
  );
}

async function daemonError(res: Awaited<ReturnType<typeof request>>): Promise<string> {
  try {
    const text = (await readBody(res, 64 * 1024, "daemon error")).toString("utf8");
    const j = JSON.parse(text) as { message?: string };
    return j.message ?? text.trim();
  } catch {
    return "";
  }
}

/**
 * Open `docker-daemon:NAME:TAG` through the daemon's Docker-compatible API: `GET /images/NAME/get`
 * streams a docker-save tarball, which is saved to a temp file and read as a docker-archive.
 */
export async function openDaemon(
  name: string,
  opts: { signal?: AbortSignal; socket?: string } = {},
): Promise<BuiltImage> {
  const socket = opts.socket ?? (await findDaemonSocket());
  const label = `docker-daemon:${name}`;
  const res = await request({
    url: `http://localhost/images/${encodeURIComponent(name)}/get`,
    socketPath: socket,
    signal: opts.signal,
    idleTimeoutMs: 300_000,
  }).catch((e: Error) => {
    throw new KairosError(
      `${label}: cannot talk to the daemon at ${socket}: ${e.message}`,
      "is the daemon running?",
    );
  });
  if (res.status === 404) {
    const msg = await daemonError(res);
    throw new KairosError(
      `${label}: the daemon has no such image${msg ? ` (${msg})` : ""}`,
      "list images with 'docker images' / 'podman images'",
    );
  }
  if (res.status !== 200) {
    throw new KairosError(`${label}: daemon answered HTTP ${res.status} ${await daemonError(res)}`.trim());
  }
  const { dir, cleanup } = await makeTempDir("daemon");
  try {
    const file = join(dir, "image.tar");
    await pipeline(res.body, createWriteStream(file), { signal: opts.signal });
    return await openDockerArchive(file, {}, [cleanup], label);
  } catch (e) {
    await cleanup();
    throw e;
  }
}

/** Load an image into the daemon (`POST /images/load` with a docker-archive), tagged `name`. */
export async function writeDaemon(
  image: Image,
  name: string,
  opts: TransferOptions & { socket?: string } = {},
): Promise<string> {
  const socket = opts.socket ?? (await findDaemonSocket());
  const { dir, cleanup } = await makeTempDir("daemon-load");
  try {
    const file = join(dir, "image.tar");
    const digest = await writeDockerArchive(image, file, name, opts);
    const { createReadStream, statSync } = await import("node:fs");
    const res = await request({
      method: "POST",
      url: "http://localhost/images/load?quiet=1",
      socketPath: socket,
      headers: { "content-type": "application/x-tar", "content-length": statSync(file).size },
      body: createReadStream(file) as Readable,
      signal: opts.signal,
      idleTimeoutMs: 300_000,
    });
    const text = (await readBody(res, 1024 * 1024, "daemon answer")).toString("utf8");
    if (res.status !== 200 || /"error"/.test(text)) {
      throw new KairosError(
        `docker-daemon:${name}: load failed (HTTP ${res.status}) ${text.slice(0, 300)}`.trim(),
      );
    }
    return digest;
  } finally {
    await cleanup();
  }
}
