import { Readable } from "node:stream";
import { KairosError, type Progress } from "../sys/index.js";
import { type Challenge, type Credentials, lookupCredentials, parseChallenge } from "./auth.js";
import { BlobCache } from "./blobcache.js";
import { DigestMismatchError, isDigest, verifyBytes } from "./digest.js";
import { type HttpResponse, NetworkError, readBody, request } from "./http.js";
import type { BlobOpener, BuiltImage } from "./image.js";
import {
  detectMediaType,
  type IndexInfo,
  imageFromManifest,
  indexInfo,
  isIndexType,
  parseIndex,
  selectPlatform,
} from "./image.js";
import { DEFAULT_PLATFORM, DOCKER_HUB, type DockerReference, formatDockerReference } from "./reference.js";
import {
  type Descriptor,
  type Image,
  INDEX_TYPES,
  MANIFEST_TYPES,
  MAX_MANIFEST_BYTES,
  type Platform,
} from "./types.js";
import { counted, forEachLimit, shortDigest, sleep, uniqueByDigest } from "./util.js";

export interface RemoteOptions {
  /** Explicit credentials (--creds); otherwise looked up in the auth files. */
  creds?: Credentials;
  /** Allow plain HTTP and unverified TLS for any host (loopback hosts may always fall back to HTTP). */
  insecure?: boolean;
  signal?: AbortSignal;
  /** Attempts per blob download/upload after the first (default 3). */
  retries?: number;
  /** Auth files to search instead of the default list. */
  authFiles?: string[];
  /**
   * Keep the image's blobs in a temporary cache for as long as the image is open (removed by
   * close()), so reading a layer again does not download it again (see BlobCache).
   */
  cacheBlobs?: boolean;
}

const ACCEPT = [...MANIFEST_TYPES, ...INDEX_TYPES].join(", ");

function isLoopback(host: string): boolean {
  const h = host.replace(/:\d+$/, "").replace(/^\[|\]$/g, "");
  return h === "localhost" || /^127\.\d+\.\d+\.\d+$/.test(h) || h === "::1";
}

/** Read a registry's JSON error body into "CODE: message". */
async function errorDetail(res: HttpResponse): Promise<string> {
  try {
    const text = (await readBody(res, 64 * 1024, "error body")).toString("utf8");
    const doc = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
    const e = doc.errors?.[0];
    if (e) return `${e.code ?? "ERROR"}: ${e.message ?? ""}`.trim();
    return text.slice(0, 200).trim();
  } catch {
    return "";
  }
}

interface CallOptions {
  method?: string;
  path: string;
  /** Absolute URL instead of path (upload locations). */
  url?: URL;
  scopes: string[];
  headers?: Record<string, string | number>;
  body?: Buffer | Readable;
}

/** What a client learns about a registry and can share: scheme, auth challenge, tokens. */
class Session {
  base: URL | undefined;
  challenge: Challenge | null | undefined;
  /** Bearer tokens by scope set, with the time (ms) after which they are fetched again. */
  readonly tokens = new Map<string, { token: string; renewAt: number }>();
  pinging: Promise<void> | undefined;
}

/** A client for one registry host: ping, authenticate (anonymous, basic, bearer), manifests, blobs. */
export class Registry {
  private readonly creds: Credentials | undefined;

  constructor(
    readonly host: string,
    private readonly opts: RemoteOptions = {},
    private readonly s: Session = new Session(),
  ) {
    this.creds = opts.creds ?? lookupCredentials(host, opts.authFiles);
  }

  private apiHost(): string {
    return this.host === DOCKER_HUB ? "registry-1.docker.io" : this.host;
  }

  /** Find the scheme and the auth challenge with GET /v2/. */
  ping(): Promise<void> {
    this.s.pinging ??= this.doPing().catch((e) => {
      this.s.pinging = undefined;
      throw e;
    });
    return this.s.pinging;
  }

  private async doPing(): Promise<void> {
    const schemes = ["https:"];
    if (this.opts.insecure || isLoopback(this.host)) schemes.push("http:");
    const failures: string[] = [];
    let cause: unknown;
    for (const scheme of schemes) {
      const base = new URL(`${scheme}//${this.apiHost()}/`);
      let res: HttpResponse;
      try {
        res = await request({
          url: new URL("/v2/", base),
          insecureTls: this.opts.insecure,
          signal: this.opts.signal,
          idleTimeoutMs: 30_000,
        });
      } catch (e) {
        if (!(e instanceof NetworkError)) throw e;
        failures.push(`${scheme.slice(0, -1)}: ${e.code ?? e.message}`);
        cause ??= e;
        continue;
      }
      res.discard();
      if (res.status === 401) {
        const c = parseChallenge(res.headers["www-authenticate"] as string | undefined);
        if (!c)
          throw new KairosError(`registry ${this.host} asks for authentication in a way we do not support`);
        this.s.base = base;
        this.s.challenge = c;
        return;
      }
      if (res.status === 200 || res.status === 404) {
        // 404: some registries do not implement the ping; requests will tell.
        this.s.base = base;
        this.s.challenge = null;
        return;
      }
      failures.push(`${scheme.slice(0, -1)}: HTTP ${res.status} for /v2/`);
    }
    throw new KairosError(
      `cannot reach registry ${this.host} (${failures.join("; ")})`,
      this.opts.insecure || isLoopback(this.host)
        ? "check the host name and port and that the registry is running (--insecure accepts self-signed TLS)"
        : "check the host name and port and that the registry is running; a plain-HTTP or self-signed registry needs --insecure",
      { cause },
    );
  }

  private basicHeader(): string | undefined {
    return this.creds
      ? `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString("base64")}`
      : undefined;
  }

  private async authHeader(scopes: string[], refresh = false): Promise<string | undefined> {
    await this.ping();
    const c = this.s.challenge;
    if (!c) return undefined;
    if (c.scheme === "basic") return this.basicHeader();
    const key = scopes.join(" ");
    if (!refresh) {
      const cached = this.s.tokens.get(key);
      if (cached && Date.now() < cached.renewAt) return `Bearer ${cached.token}`;
    }
    const realm = c.params.realm;
    if (!realm) throw new KairosError(`registry ${this.host} sent a bearer challenge without a realm`);
    const url = new URL(realm);
    if (c.params.service) url.searchParams.set("service", c.params.service);
    for (const s of scopes) url.searchParams.append("scope", s);
    const basic = this.basicHeader();
    let res: HttpResponse;
    try {
      res = await request({
        url,
        headers: basic ? { authorization: basic } : {},
        insecureTls: this.opts.insecure,
        signal: this.opts.signal,
      });
    } catch (e) {
      throw new KairosError(
        `cannot reach the token server of ${this.host}: ${(e as Error).message}`,
        undefined,
        {
          cause: e,
        },
      );
    }
    if (res.status === 401 || res.status === 403) {
      const detail = await errorDetail(res);
      throw new KairosError(
        `authentication to registry ${this.host} failed (HTTP ${res.status}${detail ? `, ${detail}` : ""})`,
        this.creds
          ? "check the user name and password (--creds USER:PASS or the auth file entry)"
          : "the registry needs credentials: pass --creds USER:PASS or log in with 'skopeo login'/'docker login'",
      );
    }
    if (res.status !== 200) {
      const detail = await errorDetail(res);
      throw new KairosError(`token server of ${this.host} answered HTTP ${res.status} ${detail}`.trim());
    }
    let body: { token?: string; access_token?: string; expires_in?: number };
    try {
      body = JSON.parse((await readBody(res, 1024 * 1024, "token response")).toString("utf8"));
    } catch (e) {
      throw new KairosError(`token server of ${this.host} sent an invalid answer: ${(e as Error).message}`);
    }
    const token = body.token ?? body.access_token;
    if (!token) throw new KairosError(`token server of ${this.host} returned no token`);
    // The spec's default lifetime is 60 s; renew a little early.
    const life = typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : 60;
    this.s.tokens.set(key, { token, renewAt: Date.now() + Math.max(5, life - 10) * 1000 });
    return `Bearer ${token}`;
  }

  /** An authenticated request; retries once with a fresh token on 401 when the body can be replayed. */
  async call(o: CallOptions): Promise<HttpResponse> {
    await this.ping();
    const url = o.url ?? new URL(o.path, this.s.base);
    const send = async (refresh: boolean) => {
      const auth = await this.authHeader(o.scopes, refresh);
      return request({
        method: o.method ?? "GET",
        url,
        headers: { ...o.headers, ...(auth ? { authorization: auth } : {}) },
        body: o.body,
        insecureTls: this.opts.insecure,
        signal: this.opts.signal,
      });
    };
    let res = await send(false);
    if (res.status === 401 && !(o.body instanceof Readable)) {
      const c = parseChallenge(res.headers["www-authenticate"] as string | undefined);
      res.discard();
      if (c) this.s.challenge = c;
      res = await send(true);
    }
    if (res.status === 401 || res.status === 403) {
      const detail = await errorDetail(res);
      throw new KairosError(
        `access to ${this.host}/${o.scopes[0]?.split(":")[1] ?? ""} denied (HTTP ${res.status}${detail ? `, ${detail}` : ""})`,
        this.creds
          ? "check the credentials and that this user may access the repository"
          : "the registry needs credentials: pass --creds USER:PASS or add them to ~/.docker/config.json",
      );
    }
    return res;
  }

  /** GET a manifest or index by tag or digest; checks size, media type and (for digests) content. */
  async getManifest(
    repo: string,
    reference: string,
    what: string,
  ): Promise<{ bytes: Buffer; mediaType: string }> {
    const retries = this.opts.retries ?? 3;
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.fetchManifest(repo, reference, what);
      } catch (e) {
        const transient = e instanceof NetworkError && !/^HTTP4(?!29)/.test(e.code ?? "");
        if (!transient || attempt >= retries || this.opts.signal?.aborted) throw e;
        await sleep(200 * 2 ** (attempt + 1), this.opts.signal);
      }
    }
  }

  private async fetchManifest(
    repo: string,
    reference: string,
    what: string,
  ): Promise<{ bytes: Buffer; mediaType: string }> {
    const res = await this.call({
      path: `/v2/${repo}/manifests/${reference}`,
      scopes: [`repository:${repo}:pull`],
      headers: { accept: ACCEPT },
    });
    if (res.status === 404) {
      const detail = await errorDetail(res);
      throw new KairosError(
        `${what}: not found in registry ${this.host}${detail ? ` (${detail})` : ""}`,
        "check the repository name and the tag or digest",
      );
    }
    if (res.status !== 200) {
      const detail = await errorDetail(res);
      if (res.status >= 500 || res.status === 429) {
        throw new NetworkError(
          `${this.host}/v2/${repo}/manifests/${reference}`,
          `HTTP${res.status}`,
          `HTTP ${res.status} ${detail}`.trim(),
        );
      }
      throw new KairosError(`${what}: registry answered HTTP ${res.status} ${detail}`.trim());
    }
    const bytes = await readBody(res, MAX_MANIFEST_BYTES, `${what} manifest`).catch(
      (e: NodeJS.ErrnoException) => {
        if (e instanceof KairosError) throw e;
        throw new NetworkError(`${this.host}/v2/${repo}/manifests/${reference}`, e.code, e.message, {
          cause: e,
        });
      },
    );
    if (isDigest(reference)) verifyBytes(bytes, { digest: reference }, `${what} manifest`);
    const mediaType = detectMediaType(bytes, res.headers["content-type"], `${what} manifest`);
    return { bytes, mediaType };
  }

  private async blobResponse(
    repo: string,
    digest: string,
    offset: number,
    what: string,
  ): Promise<HttpResponse> {
    const range: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    let res = await this.call({
      path: `/v2/${repo}/blobs/${digest}`,
      scopes: [`repository:${repo}:pull`],
      headers: range,
    });
    let url = new URL(`/v2/${repo}/blobs/${digest}`, this.s.base);
    for (let hops = 0; res.status >= 300 && res.status < 400 && res.headers.location; hops++) {
      if (hops > 5) throw new KairosError(`${what}: too many redirects for blob ${digest}`);
      res.discard();
      const next = new URL(res.headers.location, url);
      // Credentials never follow a redirect to another host (blob storage URLs are pre-signed).
      res =
        next.host === this.s.base?.host && next.protocol === this.s.base?.protocol
          ? await this.call({ url: next, path: "", scopes: [`repository:${repo}:pull`], headers: range })
          : await request({
              url: next,
              headers: range,
              signal: this.opts.signal,
              insecureTls: this.opts.insecure,
            });
      url = next;
    }
    if (res.status === 404) {
      res.discard();
      throw new KairosError(
        `${what}: blob ${digest} not found in registry ${this.host}`,
        "the image is incomplete in the registry",
      );
    }
    if (res.status !== 200 && res.status !== 206) {
      const detail = await errorDetail(res);
      throw new NetworkError(url.href, `HTTP${res.status}`, `HTTP ${res.status} ${detail}`.trim());
    }
    return res;
  }

  /** A blob's bytes; a dropped connection is resumed with an HTTP Range request (up to `retries` times). */
  openBlob(repo: string, desc: Descriptor, what: string): Readable {
    const retries = this.opts.retries ?? 3;
    const self = this;
    async function* chunks(): AsyncGenerator<Buffer> {
      let offset = 0;
      let failures = 0;
      for (;;) {
        try {
          const res = await self.blobResponse(repo, desc.digest, offset, what);
          let skip = offset > 0 && res.status === 200 ? offset : 0;
          const declared = Number(res.headers["content-length"] ?? Number.NaN);
          let received = 0;
          for await (const c of res.body as AsyncIterable<Buffer>) {
            received += c.length;
            let chunk = c;
            if (skip > 0) {
              const n = Math.min(skip, chunk.length);
              skip -= n;
              chunk = chunk.subarray(n);
              if (chunk.length === 0) continue;
            }
            offset += chunk.length;
            yield chunk;
          }
          // A complete response that is shorter than the descriptor is a short blob, not a
          // dropped connection: end here and let the verifier report the size mismatch.
          if (offset >= desc.size || received === declared) return;
          throw new NetworkError(
            `${self.host}/v2/${repo}/blobs/${desc.digest}`,
            "EARLYEOF",
            "connection closed early",
          );
        } catch (e) {
          const retryable = e instanceof NetworkError || (e as NodeJS.ErrnoException).code === "ECONNRESET";
          if (!retryable || self.opts.signal?.aborted) throw e;
          failures++;
          if (failures > retries) {
            throw new KairosError(
              `${what}: download of blob ${desc.digest} failed after ${failures} attempts: ${(e as Error).message}`,
              "check the network and the registry",
            );
          }
          await sleep(200 * 2 ** failures, self.opts.signal);
        }
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  /** Does the repository already have this blob? */
  async blobExists(repo: string, digest: string): Promise<boolean> {
    const res = await this.call({
      method: "HEAD",
      path: `/v2/${repo}/blobs/${digest}`,
      scopes: [`repository:${repo}:pull,push`],
    });
    res.discard();
    return res.status === 200;
  }

  /** Try a cross-repository mount; true if the registry mounted it. */
  async mountBlob(repo: string, digest: string, from: string): Promise<boolean> {
    const res = await this.call({
      method: "POST",
      path: `/v2/${repo}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`,
      scopes: [`repository:${repo}:pull,push`, `repository:${from}:pull`],
    });
    res.discard();
    if (res.status === 201) return true;
    if (res.status === 202 && res.headers.location) {
      // The registry opened an upload instead; cancel it.
      const del = await this.call({
        method: "DELETE",
        url: new URL(res.headers.location, this.s.base),
        path: "",
        scopes: [`repository:${repo}:pull,push`],
      });
      del.discard();
    }
    return false;
  }

  private async startUpload(repo: string, what: string): Promise<URL> {
    const res = await this.call({
      method: "POST",
      path: `/v2/${repo}/blobs/uploads/`,
      scopes: [`repository:${repo}:pull,push`],
    });
    if (res.status !== 202 || !res.headers.location) {
      const detail = await errorDetail(res);
      throw new KairosError(`${what}: cannot start a blob upload (HTTP ${res.status} ${detail})`);
    }
    res.discard();
    return new URL(res.headers.location, this.s.base);
  }

  private withDigest(loc: URL, digest: string): URL {
    const u = new URL(loc.href);
    u.searchParams.set("digest", digest);
    return u;
  }

  /**
   * Upload a blob: one PUT with the whole stream (monolithic), or PATCH requests of `chunkSize`
   * bytes and a final PUT (chunked). The stream should be verified (digest) by the caller.
   */
  async uploadBlob(
    repo: string,
    desc: Descriptor,
    body: Readable,
    what: string,
    chunkSize?: number,
  ): Promise<void> {
    let loc = await this.startUpload(repo, what);
    const scopes = [`repository:${repo}:pull,push`];
    if (!chunkSize) {
      const res = await this.call({
        method: "PUT",
        url: this.withDigest(loc, desc.digest),
        path: "",
        scopes,
        headers: { "content-type": "application/octet-stream", "content-length": desc.size },
        body,
      });
      if (res.status !== 201) {
        const detail = await errorDetail(res);
        throw new KairosError(
          `${what}: upload of blob ${desc.digest} failed (HTTP ${res.status} ${detail})`.trim(),
        );
      }
      res.discard();
      return;
    }
    let offset = 0;
    let pending: Buffer[] = [];
    let pendingLen = 0;
    const flush = async () => {
      if (pendingLen === 0) return;
      const chunk = Buffer.concat(pending);
      pending = [];
      pendingLen = 0;
      const res = await this.call({
        method: "PATCH",
        url: loc,
        path: "",
        scopes,
        headers: {
          "content-type": "application/octet-stream",
          "content-range": `${offset}-${offset + chunk.length - 1}`,
        },
        body: chunk,
      });
      if (res.status !== 202) {
        const detail = await errorDetail(res);
        throw new KairosError(
          `${what}: chunk upload of ${desc.digest} failed (HTTP ${res.status} ${detail})`.trim(),
        );
      }
      res.discard();
      offset += chunk.length;
      if (res.headers.location) loc = new URL(res.headers.location, loc);
    };
    for await (const c of body as AsyncIterable<Buffer>) {
      pending.push(c);
      pendingLen += c.length;
      if (pendingLen >= chunkSize) await flush();
    }
    await flush();
    const res = await this.call({
      method: "PUT",
      url: this.withDigest(loc, desc.digest),
      path: "",
      scopes,
      body: Buffer.alloc(0),
    });
    if (res.status !== 201) {
      const detail = await errorDetail(res);
      throw new KairosError(
        `${what}: finishing upload of ${desc.digest} failed (HTTP ${res.status} ${detail})`.trim(),
      );
    }
    res.discard();
  }

  /** PUT a manifest under a tag or digest. */
  async putManifest(
    repo: string,
    reference: string,
    bytes: Buffer,
    mediaType: string,
    what: string,
  ): Promise<void> {
    const res = await this.call({
      method: "PUT",
      path: `/v2/${repo}/manifests/${reference}`,
      scopes: [`repository:${repo}:pull,push`],
      headers: { "content-type": mediaType },
      body: bytes,
    });
    if (res.status !== 201) {
      const detail = await errorDetail(res);
      throw new KairosError(`${what}: manifest upload failed (HTTP ${res.status} ${detail})`.trim());
    }
    res.discard();
  }
}

const sessions = new Map<string, Session>();

/** A client for a host; the ping result and tokens are shared by clients with the same host, TLS mode and credentials. */
export function registryFor(host: string, opts: RemoteOptions = {}): Registry {
  const creds = opts.creds ?? lookupCredentials(host, opts.authFiles);
  const key = JSON.stringify([host, opts.insecure ?? false, creds ?? null]);
  let session = sessions.get(key);
  if (!session) {
    session = new Session();
    sessions.set(key, session);
  }
  return new Registry(host, { ...opts, ...(creds ? { creds } : {}) }, session);
}

/** Open an image from a registry, choosing `platform` (default linux/amd64) from an index. */
export async function openRemote(
  ref: DockerReference,
  opts: RemoteOptions & { platform?: Platform } = {},
): Promise<BuiltImage> {
  const reg = registryFor(ref.registry, opts);
  const name = `docker://${formatDockerReference(ref)}`;
  let { bytes, mediaType } = await reg.getManifest(ref.repository, ref.digest ?? ref.tag ?? "latest", name);
  let index: IndexInfo | undefined;
  for (let depth = 0; isIndexType(mediaType); depth++) {
    if (depth > 2) throw new KairosError(`${name}: indexes nested too deeply`);
    index ??= indexInfo(bytes, mediaType, `${name} index`);
    const d = selectPlatform(parseIndex(bytes, `${name} index`), opts.platform ?? DEFAULT_PLATFORM, name);
    ({ bytes, mediaType } = await reg.getManifest(ref.repository, d.digest, name));
  }
  const fetch: BlobOpener = async (d) => reg.openBlob(ref.repository, d, name);
  const cache = opts.cacheBlobs ? await BlobCache.create() : undefined;
  const image = await imageFromManifest({
    name,
    mediaType,
    manifest: bytes,
    open: cache ? cache.wrap(fetch) : fetch,
    origin: { registry: ref.registry, repository: ref.repository },
    cleanups: cache ? [() => cache.close()] : [],
  }).catch(async (err: unknown) => {
    await cache?.close();
    throw err;
  });
  if (index) image.index = index;
  return image;
}

export interface PushOptions extends RemoteOptions {
  progress?: Progress;
  /** Blobs uploaded at once (default 3). */
  concurrency?: number;
  /** Upload in PATCH chunks of this many bytes instead of one PUT per blob. */
  chunkSize?: number;
}

/** Push an image: blobs that exist are skipped, blobs from the same registry are mounted, the rest uploaded. */
export async function pushImage(image: Image, ref: DockerReference, opts: PushOptions = {}): Promise<string> {
  const reg = registryFor(ref.registry, opts);
  const repo = ref.repository;
  const what = `docker://${formatDockerReference(ref)}`;
  const manifestBytes = await image.rawManifest();
  const digest = await image.digest();
  if (ref.digest && ref.digest !== digest) {
    throw new DigestMismatchError(
      `${what}: the image's manifest digest is ${digest}, not the one in the reference`,
      "push by tag, or to the image's own digest",
    );
  }
  const layers = await image.layers();
  await forEachLimit(uniqueByDigest(layers), opts.concurrency ?? 3, async (layer) => {
    const task = opts.progress?.task(`push ${shortDigest(layer.digest)}`, layer.size);
    try {
      if (await reg.blobExists(repo, layer.digest)) {
        task?.finish("already there");
        return;
      }
      const o = layer.origin;
      if (
        o &&
        o.registry === ref.registry &&
        o.repository !== repo &&
        (await reg.mountBlob(repo, layer.digest, o.repository))
      ) {
        task?.finish(`mounted from ${o.repository}`);
        return;
      }
      const src = await layer.compressed();
      const body = task ? counted(src, task) : src;
      await uploadWithRetry(reg, repo, layer.descriptor, body, what, opts, async () => {
        const s = await layer.compressed();
        return task ? counted(s, task) : s;
      });
      task?.finish();
    } catch (e) {
      task?.fail((e as Error).message);
      throw e;
    }
  });
  const manifest = await image.manifest();
  const config = await image.rawConfig();
  if (!(await reg.blobExists(repo, manifest.config.digest))) {
    await reg.uploadBlob(repo, manifest.config, Readable.from([config]), what, opts.chunkSize);
  }
  await reg.putManifest(repo, ref.tag ?? digest, manifestBytes, image.mediaType(), what);
  return digest;
}

async function uploadWithRetry(
  reg: Registry,
  repo: string,
  desc: Descriptor,
  first: Readable,
  what: string,
  opts: PushOptions,
  reopen: () => Promise<Readable>,
): Promise<void> {
  const retries = opts.retries ?? 3;
  let body = first;
  for (let attempt = 0; ; attempt++) {
    try {
      await reg.uploadBlob(repo, desc, body, what, opts.chunkSize);
      return;
    } catch (e) {
      if (!(e instanceof NetworkError) || attempt >= retries || opts.signal?.aborted) throw e;
      await sleep(200 * 2 ** (attempt + 1), opts.signal);
      body = await reopen();
    }
  }
}
