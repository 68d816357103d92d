import { KairosError } from "../sys/index.js";
import { isDigest } from "./digest.js";
import type { Platform } from "./types.js";

/** The transports we understand, named as skopeo names them. */
export const TRANSPORTS = ["docker", "oci", "oci-archive", "docker-archive", "docker-daemon", "dir"] as const;
export type Transport = (typeof TRANSPORTS)[number];

/** A registry image reference: HOST/REPO with a tag or a digest. */
export interface DockerReference {
  /** Registry host as written, with port if any ("docker.io" for Docker Hub). */
  registry: string;
  /** Repository path, e.g. "library/debian". */
  repository: string;
  tag?: string;
  digest?: string;
}

export type ImageReference =
  | { transport: "docker"; ref: DockerReference }
  | { transport: "oci"; path: string; tag?: string }
  | { transport: "oci-archive"; path: string; tag?: string }
  | { transport: "docker-archive"; path: string; name?: string; index?: number }
  | { transport: "docker-daemon"; name: string }
  | { transport: "dir"; path: string };

export const DOCKER_HUB = "docker.io";
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;

function bad(input: string, why: string, hint?: string): KairosError {
  return new KairosError(`invalid image reference '${input}': ${why}`, hint);
}

/**
 * Parse "HOST/REPO:TAG", "REPO@sha256:…", "debian" (→ docker.io/library/debian:latest), as the
 * Docker CLI does: the first component is a host if it has a "." or ":" or is "localhost".
 */
export function parseDockerReference(input: string): DockerReference {
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) throw bad(input, `'${digest}' is not a digest`, "use @sha256:<64 hex digits>");
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf("/");
  const colon = rest.lastIndexOf(":");
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(input, `'${tag}' is not a valid tag`);
  }
  if (!rest) throw bad(input, "no repository name");
  const parts = rest.split("/");
  let registry = DOCKER_HUB;
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes(".") || first.includes(":") || first === "localhost")) {
    registry = first;
    parts.shift();
    if (!HOST.test(registry)) throw bad(input, `'${registry}' is not a valid registry host`);
  }
  if (registry === "index.docker.io" || registry === "registry-1.docker.io") registry = DOCKER_HUB;
  if (registry === DOCKER_HUB && parts.length === 1) parts.unshift("library");
  for (const p of parts) {
    if (!COMPONENT.test(p)) {
      throw bad(
        input,
        `'${p}' is not a valid repository path component`,
        "use lowercase letters, digits, '.', '_' and '-'",
      );
    }
  }
  const repository = parts.join("/");
  if (repository.length > 255) throw bad(input, "repository name longer than 255 characters");
  if (!tag && !digest) tag = "latest";
  return { registry, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** "host/repo:tag@digest" for messages. */
export function formatDockerReference(r: DockerReference): string {
  return `${r.registry}/${r.repository}${r.tag ? `:${r.tag}` : ""}${r.digest ? `@${r.digest}` : ""}`;
}

/** Split "PATH[:REST]" at the first ':' as skopeo does. */
function splitPath(s: string): [string, string | undefined] {
  const i = s.indexOf(":");
  return i < 0 ? [s, undefined] : [s.slice(0, i), s.slice(i + 1)];
}

/** Parse a transport-prefixed image reference, e.g. "docker://host/repo:tag" or "oci:DIR:TAG". */
export function parseReference(input: string): ImageReference {
  const m = /^([a-z-]+):(.*)$/s.exec(input);
  const transport = m?.[1];
  if (!m || !(TRANSPORTS as readonly string[]).includes(transport!)) {
    throw new KairosError(
      `unknown transport in image reference '${input}'`,
      `prefix it with one of: ${TRANSPORTS.map((t) => (t === "docker" ? "docker://" : `${t}:`)).join(", ")}` +
        (input.includes("://") ? "" : ` (a registry image is docker://${input})`),
    );
  }
  const body = m[2]!;
  switch (transport as Transport) {
    case "docker": {
      if (!body.startsWith("//")) throw bad(input, "expected docker://HOST/REPO[:TAG|@DIGEST]");
      return { transport: "docker", ref: parseDockerReference(body.slice(2)) };
    }
    case "oci":
    case "oci-archive": {
      const [path, tag] = splitPath(body);
      if (!path) throw bad(input, "no path", `use ${transport}:PATH[:TAG]`);
      if (tag !== undefined && !/^[A-Za-z0-9._\-:@/+]+$/.test(tag))
        throw bad(input, `'${tag}' is not a valid tag`);
      return { transport: transport as "oci" | "oci-archive", path, ...(tag ? { tag } : {}) };
    }
    case "docker-archive": {
      const [path, rest] = splitPath(body);
      if (!path) throw bad(input, "no path", "use docker-archive:PATH[:NAME:TAG|:@INDEX]");
      if (rest === undefined || rest === "") return { transport: "docker-archive", path };
      if (rest.startsWith("@")) {
        const index = Number(rest.slice(1));
        if (!Number.isInteger(index) || index < 0) throw bad(input, `'${rest}' is not an image index`);
        return { transport: "docker-archive", path, index };
      }
      const r = parseDockerReference(rest);
      if (r.digest) throw bad(input, "a docker-archive name cannot have a digest");
      return { transport: "docker-archive", path, name: rest };
    }
    case "docker-daemon": {
      if (!body) throw bad(input, "no image name", "use docker-daemon:NAME:TAG or docker-daemon:sha256:ID");
      if (!body.startsWith("sha256:")) parseDockerReference(body);
      return { transport: "docker-daemon", name: body };
    }
    case "dir": {
      if (!body) throw bad(input, "no path", "use dir:ROOTFS_DIRECTORY");
      return { transport: "dir", path: body };
    }
  }
}

/** Render a parsed reference back to its transport form. */
export function formatReference(r: ImageReference): string {
  switch (r.transport) {
    case "docker":
      return `docker://${formatDockerReference(r.ref)}`;
    case "oci":
    case "oci-archive":
      return `${r.transport}:${r.path}${r.tag ? `:${r.tag}` : ""}`;
    case "docker-archive":
      return `docker-archive:${r.path}${r.name ? `:${r.name}` : r.index !== undefined ? `:@${r.index}` : ""}`;
    case "docker-daemon":
      return `docker-daemon:${r.name}`;
    case "dir":
      return `dir:${r.path}`;
  }
}

/** Parse "os/arch[/variant]". */
export function parsePlatform(s: string): Platform {
  const parts = s.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new KairosError(
      `invalid platform '${s}'`,
      "use os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8",
    );
  }
  return { os: parts[0]!, architecture: parts[1]!, ...(parts[2] ? { variant: parts[2] } : {}) };
}

export function formatPlatform(p: Platform | undefined): string {
  if (!p) return "unknown";
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

export const DEFAULT_PLATFORM: Platform = { os: "linux", architecture: "amd64" };

/** Does an index entry's platform satisfy the wanted one? (arm64 without variant == v8). */
export function platformMatches(have: Platform | undefined, want: Platform): boolean {
  if (!have) return false;
  if (have.os !== want.os || have.architecture !== want.architecture) return false;
  if (!want.variant) return true;
  const norm = (v: string | undefined) => (have.architecture === "arm64" && !v ? "v8" : v);
  return norm(have.variant) === norm(want.variant);
}

/** What `resolveSourceReference` may look at on the machine (I/O is the caller's). */
export interface SourceProbe {
  /** True if `path` is an existing directory. */
  isDirectory(path: string): boolean;
  /** True if a local Docker daemon can be reached (its socket exists). */
  dockerDaemon?(): boolean;
}

/** An image source as written by a Kairos user, in our (skopeo) transport spelling. */
export interface ResolvedSource {
  /** The reference for parseReference: docker://…, oci:DIR[:TAG], docker-archive:…, … */
  ref: string;
  /** How the value was read, for a log line ("oci:quay.io/x:1 is a registry image"). */
  reading: string;
}

const PATH_LIKE = /^(\/|\.\.?(\/|$)|~)/;

/**
 * The one rule for an image source as Kairos users write it, for AuroraBoot's `container_image`
 * and `kairos-agent upgrade --source` alike. Upstream reads both with the same function
 * (kairos-sdk `types/images` NewSrcFromURI: `oci:`/`docker:` and no scheme are registry images,
 * `dir:` a directory, `file:` a raw filesystem image, `ocifile:` an image tarball); we keep
 * skopeo's spellings working beside it:
 *
 * - `docker://REF`, `docker:REF`, `oci://REF` and a bare `REF` are registry images. With
 *   `preferDaemon` (AuroraBoot, whose users mount the Docker socket) `docker://REF` and
 *   `docker:REF` read the local Docker daemon when one is reachable.
 * - `oci:X[:TAG]` is the one spelling both mean something by: skopeo's local OCI layout, or
 *   Kairos' registry image. It is a **local layout when X (before the first `:`) is an existing
 *   directory or looks like a path** (starts with `/`, `./`, `../` or `~`), and a registry
 *   image otherwise.
 * - `dir:PATH` is a root filesystem directory; `ocifile:PATH` an image tarball (`docker save`
 *   format, our docker-archive:).
 * - `file:PATH` (upstream: a raw filesystem image to loop-mount) is refused: we have no reader.
 * - `oci-archive:`, `docker-archive:`, `docker-daemon:` pass through; another `SCHEME://` is
 *   refused.
 */
export function resolveSourceReference(
  value: string,
  probe: SourceProbe,
  opts: { preferDaemon?: boolean } = {},
): ResolvedSource {
  const v = value.trim();
  if (!v) throw new KairosError("empty image reference", "for example oci:quay.io/kairos/ubuntu:24.04");
  const registry = (ref: string, why: string): ResolvedSource => {
    parseDockerReference(ref); // refuses a malformed name now, with the reason
    return { ref: `docker://${ref}`, reading: `${v} is the registry image ${ref}${why}` };
  };
  const scheme = /^([a-z][a-z0-9-]*):(\/\/)?/.exec(v);
  const name = scheme?.[1];
  const rest = scheme ? v.slice(scheme[0].length) : v;
  switch (name) {
    case "oci-archive":
    case "docker-archive":
    case "docker-daemon":
      return { ref: v, reading: `${v} (${name})` };
    case "dir":
      if (!rest) throw new KairosError(`invalid image reference '${v}': no path`, "use dir:/path/to/rootfs");
      return { ref: `dir:${rest}`, reading: `${v} is the root filesystem directory ${rest}` };
    case "ocifile":
      if (!rest)
        throw new KairosError(`invalid image reference '${v}': no path`, "use ocifile:/path/to/image.tar");
      return { ref: `docker-archive:${rest}`, reading: `${v} is the image tarball ${rest}` };
    case "file":
      throw new KairosError(
        `image source '${v}': a raw filesystem image (upstream's file:) is not supported`,
        "use ocifile:/path/to/image.tar for an image tarball, dir:/path for a root filesystem, or an image reference",
      );
    case "docker":
      if (opts.preferDaemon && probe.dockerDaemon?.()) {
        return { ref: `docker-daemon:${rest}`, reading: `${v} is ${rest} in the local Docker daemon` };
      }
      return registry(rest, "");
    case "oci": {
      if (scheme?.[2]) return registry(rest, "");
      const [path, tag] = splitPath(rest);
      if (probe.isDirectory(path) || PATH_LIKE.test(path)) {
        return {
          ref: `oci:${rest}`,
          reading: `${v} is the local OCI layout ${path}${tag ? ` (tag ${tag})` : ""}`,
        };
      }
      return registry(rest, ` (no directory ${path} here, so not a local layout)`);
    }
    default:
      if (scheme?.[2])
        throw new KairosError(
          `image source '${v}' has a transport we do not read`,
          "use oci:HOST/REPO:TAG, docker://…, oci:LAYOUT_DIR, ocifile:, dir:, oci-archive:, docker-archive: or docker-daemon:",
        );
      // No scheme, or a registry host with a port (localhost:5000/x), which is not one.
      return registry(v, "");
  }
}
