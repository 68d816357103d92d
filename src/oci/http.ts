import http, { type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { Readable } from "node:stream";
import { KairosError } from "../sys/index.js";

export interface HttpRequest {
  method?: string;
  url: string | URL;
  headers?: Record<string, string | number>;
  /** A buffer, or a stream that is piped into the request (set content-length in headers). */
  body?: Buffer | string | Readable;
  /** Talk HTTP over this unix socket (the URL's host is then only the Host header). */
  socketPath?: string;
  /** Accept any TLS certificate (only with --insecure). */
  insecureTls?: boolean;
  signal?: AbortSignal;
  /** Abort if the connection is idle this long (default 60 s). */
  idleTimeoutMs?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body stream; consume it, or call `discard()`. */
  body: IncomingMessage;
  discard(): void;
}

/** A network-level failure (refused, reset, DNS, TLS); the message names the URL. */
export class NetworkError extends KairosError {
  override readonly name = "NetworkError";
  constructor(
    readonly url: string,
    readonly code: string | undefined,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot reach ${url}: ${message}`, undefined, options);
  }
}

const guarded = new WeakSet<Socket>();

const agents = {
  http: new http.Agent({ keepAlive: true, maxSockets: 8 }),
  https: new https.Agent({ keepAlive: true, maxSockets: 8 }),
  httpsInsecure: new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: false }),
};

/** One HTTP request with node:http(s); no redirects are followed. */
export function request(req: HttpRequest): Promise<HttpResponse> {
  const url = typeof req.url === "string" ? new URL(req.url) : req.url;
  const isHttps = url.protocol === "https:";
  const mod = isHttps ? https : http;
  const headers: Record<string, string | number> = { "user-agent": "kairos-ts", ...req.headers };
  if (Buffer.isBuffer(req.body) || typeof req.body === "string") {
    headers["content-length"] = Buffer.byteLength(req.body);
  }
  return new Promise<HttpResponse>((resolve, reject) => {
    let responded = false;
    const r = mod.request(
      url,
      {
        method: req.method ?? "GET",
        headers,
        ...(req.socketPath
          ? { socketPath: req.socketPath }
          : { agent: isHttps ? (req.insecureTls ? agents.httpsInsecure : agents.https) : agents.http }),
      },
      (res) => {
        responded = true;
        res.once("close", detach);
        res.setTimeout(req.idleTimeoutMs ?? 60_000, () =>
          res.destroy(new NetworkError(url.href, "ETIMEDOUT", "no data for too long")),
        );
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: res,
          discard: () => {
            res.resume();
          },
        });
      },
    );
    // Abort by hand rather than with request({signal}): Node would also destroy a keep-alive
    // socket already handed back to the agent, which then emits an unhandled 'error'.
    const signal = req.signal;
    const onAbort = () => r.destroy(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
    function detach() {
      signal?.removeEventListener("abort", onAbort);
    }
    if (signal?.aborted) onAbort();
    else signal?.addEventListener("abort", onAbort, { once: true });
    r.once("close", () => {
      if (!responded) detach();
    });
    // Socket errors reach us through the request or the response; a pooled keep-alive socket
    // destroyed by an abort must not crash the process with an unhandled 'error'.
    r.on("socket", (sock: Socket) => {
      if (!guarded.has(sock)) {
        guarded.add(sock);
        sock.on("error", () => {});
      }
    });
    r.setTimeout(req.idleTimeoutMs ?? 60_000, () =>
      r.destroy(new NetworkError(url.href, "ETIMEDOUT", "timed out waiting for the server")),
    );
    r.on("error", (err: NodeJS.ErrnoException) => {
      if (err instanceof KairosError || err.name === "AbortError") reject(err);
      else
        reject(
          new NetworkError(url.href, err.code, err.code ? `${err.code} (${err.message})` : err.message, {
            cause: err,
          }),
        );
    });
    const body = req.body;
    if (body === undefined) r.end();
    else if (Buffer.isBuffer(body) || typeof body === "string") r.end(body);
    else {
      body.on("error", (e) => r.destroy(e));
      body.pipe(r);
    }
  });
}

/** Read a whole body, refusing more than `limit` bytes. */
export async function readBody(res: HttpResponse | Readable, limit: number, what: string): Promise<Buffer> {
  const stream = "body" in res && "status" in res ? res.body : (res as Readable);
  const declared = Number((stream as IncomingMessage).headers?.["content-length"]);
  if (Number.isFinite(declared) && declared > limit) {
    stream.destroy();
    throw new KairosError(`${what} is ${declared} bytes, more than the limit of ${limit}`);
  }
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of stream as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > limit) {
      stream.destroy();
      throw new KairosError(`${what} is more than the limit of ${limit} bytes`);
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks);
}
