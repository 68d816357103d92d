/**
 * The state-dir HTTP server (AuroraBoot serves its state dir the same way): GET and HEAD of
 * files under one root with byte ranges (`send`), plain-text directory listings, nothing
 * outside the root (no "..", no symlink escapes, no dotfiles), and a clean stop on a signal.
 */
import { open, readdir, realpath, stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import type SendModule from "send";
import { KairosError } from "../sys/index.js";
import { inside } from "./safe-path.js";

export interface HttpServeOptions {
  /** Directory to serve. */
  root: string;
  /** "HOST:PORT", ":PORT" (all interfaces, AuroraBoot's default ":8080") or "PORT". */
  listen?: string;
  /** Called once per request after it is answered (for logs). */
  onRequest?: (line: string) => void;
  /**
   * URL paths ("/boot.ipxe") answered from outside the root: a host file (served with ranges
   * like the rest) or generated text. Checked before the root.
   */
  extra?: ReadonlyMap<string, { file: string } | { text: string }>;
}

export interface RunningHttpServer {
  server: Server;
  /** The bound address, e.g. "127.0.0.1:8080". */
  address: string;
  port: number;
  url: string;
  close(): Promise<void>;
}

/** Parse AuroraBoot's listen_addr: ":8080", "0.0.0.0:8080", "127.0.0.1:0", "[::1]:80", "8080". */
export function parseListen(listen: string): { host: string | undefined; port: number } {
  const text = listen.trim();
  let host: string | undefined;
  let portText: string;
  if (/^\d+$/.test(text)) portText = text;
  else {
    const colon = text.lastIndexOf(":");
    portText = colon >= 0 ? text.slice(colon + 1) : "";
    host = colon > 0 ? text.slice(0, colon).replace(/^\[(.*)\]$/, "$1") : undefined;
  }
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535 || (host !== undefined && !/^[\w.:-]+$/.test(host))) {
    throw new KairosError(
      `listen address '${listen}' is not HOST:PORT`,
      "use e.g. ':8080' (all interfaces) or '127.0.0.1:8080'",
    );
  }
  return { host, port };
}

async function handle(
  root: string,
  req: IncomingMessage,
  res: ServerResponse,
  extra?: HttpServeOptions["extra"],
): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.writeHead(405, { Allow: "GET, HEAD", "Content-Type": "text/plain" }).end("method not allowed\n");
    return;
  }
  const fixed = extra?.get((req.url ?? "/").split(/[?#]/, 1)[0]!);
  if (fixed && "text" in fixed) {
    res.writeHead(200, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": Buffer.byteLength(fixed.text),
    });
    res.end(req.method === "HEAD" ? undefined : fixed.text);
    return;
  }
  if (fixed) {
    await sendFile(req, res, fixed.file);
    return;
  }
  // Split the raw path before decoding, so neither "/../" nor "%2e%2e%2f" is normalized away.
  let parts: string[];
  try {
    parts = (req.url ?? "/")
      .split(/[?#]/, 1)[0]!
      .split("/")
      .filter(Boolean)
      .flatMap((p) => decodeURIComponent(p).split("/"))
      .filter(Boolean);
  } catch {
    res.writeHead(400, { "Content-Type": "text/plain" }).end("bad request\n");
    return;
  }
  if (
    parts.some((p) => p === ".." || p === "." || p.startsWith(".") || p.includes("\0") || p.includes("\\"))
  ) {
    res.writeHead(403, { "Content-Type": "text/plain" }).end("forbidden\n");
    return;
  }
  // Symlinks are fine as long as they stay under the root.
  let real: string;
  try {
    real = await realpath(join(root, ...parts));
  } catch {
    res.writeHead(404, { "Content-Type": "text/plain" }).end("not found\n");
    return;
  }
  if (!inside(root, real)) {
    res.writeHead(403, { "Content-Type": "text/plain" }).end("forbidden\n");
    return;
  }
  const st = await stat(real);
  if (st.isDirectory()) {
    const names = (await readdir(real, { withFileTypes: true }))
      .filter((e) => !e.name.startsWith("."))
      .map((e) => (e.isDirectory() ? `${e.name}/` : e.name))
      .sort();
    const body = `${names.join("\n")}${names.length ? "\n" : ""}`;
    res.writeHead(200, {
      "Content-Type": "text/plain; charset=utf-8",
      "Content-Length": Buffer.byteLength(body),
    });
    res.end(req.method === "HEAD" ? undefined : body);
    return;
  }
  await sendFile(req, res, real);
}

/**
 * Bytes read and written at a time when sending a file: ~4 MiB while few files are in flight,
 * less as more are, so that read-ahead across all transfers of the process stays near
 * BODY_BUDGET (200 PXE clients pulling a kernel at once must not hold 200 × 4 MiB). Large pieces
 * matter for one big download: each piece costs a thread-pool read and a socket write through
 * `net`; the squashfs took ~30 % less server CPU with 4 MiB than with 1 MiB pieces here.
 */
export function bodyChunkSize(activeTransfers: number): number {
  const per = Math.floor(BODY_BUDGET / Math.max(1, activeTransfers));
  const clamped = Math.min(MAX_CHUNK, Math.max(MIN_CHUNK, per));
  return clamped - (clamped % MIN_CHUNK);
}

const BODY_BUDGET = 32 << 20;
const MIN_CHUNK = 256 << 10;
/**
 * Just under 4 MiB: bin/kairos sets glibc's mmap threshold at 4 MiB, and a piece at or above it
 * would be a fresh mmap (and page faults) every time instead of reused heap memory.
 */
const MAX_CHUNK = (4 << 20) - MIN_CHUNK;
/** File bodies being sent by this process (all servers in it share the budget). */
let activeTransfers = 0;

/**
 * Idle body pieces by size, reused by the next piece and the next transfer: a fresh 4 MiB
 * buffer per piece (what fs.createReadStream allocates) cost page faults and garbage
 * collections, ~30 % of the server's CPU per squashfs download here (docs/benchmarks.md).
 * At most BODY_BUDGET of idle pieces is kept.
 */
const idlePieces = new Map<number, Buffer[]>();
let idleBytes = 0;

function takePiece(size: number): Buffer {
  const b = idlePieces.get(size)?.pop();
  if (!b) return Buffer.allocUnsafeSlow(size);
  idleBytes -= size;
  return b;
}

function givePiece(b: Buffer): void {
  if (idleBytes + b.length > BODY_BUDGET) return;
  const list = idlePieces.get(b.length) ?? [];
  list.push(b);
  idlePieces.set(b.length, list);
  idleBytes += b.length;
}

/** Write one piece; resolves once the socket has taken all of it, or false if the response closed first. */
function writePiece(res: ServerResponse, piece: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const closed = () => resolve(false);
    res.once("close", closed);
    res.write(piece, (err) => {
      res.off("close", closed);
      resolve(!err);
    });
  });
}

/**
 * The body of a file response: `length` bytes from `start`, read into one of two pieces while
 * the other is being written (a piece is reused only after the socket took it). A client that
 * goes away stops the transfer; its pieces are left to the garbage collector, since a write
 * may still hold one. A file that shrinks underneath ends the response early (the client sees
 * fewer bytes than Content-Length said), never with other bytes.
 */
export async function sendBody(
  res: ServerResponse,
  path: string,
  start: number,
  length: number,
  pieceSize: number,
): Promise<void> {
  const fh = await open(path, "r");
  const pieces = [takePiece(pieceSize), takePiece(pieceSize)];
  let clean = false;
  try {
    let pos = start;
    let left = length;
    let inFlight: Promise<boolean> | undefined;
    for (let i = 0; left > 0; i++) {
      const piece = pieces[i & 1]!;
      const { bytesRead } = await fh.read(piece, 0, Math.min(pieceSize, left), pos);
      if (bytesRead === 0) throw new KairosError(`${path} became shorter while it was being sent`);
      pos += bytesRead;
      left -= bytesRead;
      if (inFlight && !(await inFlight)) return;
      if (res.destroyed) return;
      inFlight = writePiece(res, bytesRead === piece.length ? piece : piece.subarray(0, bytesRead));
    }
    if (inFlight && !(await inFlight)) return;
    res.end();
    clean = true;
  } finally {
    await fh.close();
    if (clean) for (const p of pieces) givePiece(p);
  }
}

/** Send one file with ranges, ETag and Last-Modified (`send` decides; sendBody writes the bytes). */
async function sendFile(req: IncomingMessage, res: ServerResponse, real: string): Promise<void> {
  // Loaded on first use: `send` and its MIME database cost ~90 ms at every CLI start otherwise.
  sendModule ??= (await import("send")).default;
  const send = sendModule;
  activeTransfers++;
  try {
    await new Promise<void>((resolve) => {
      const s = send(req, real, {
        dotfiles: "allow",
        index: false,
        acceptRanges: true,
        etag: true,
        lastModified: true,
      });
      // `send` ends its work by calling stream(path, {start, end}) once the status, the range
      // and Content-Length are set: the body is ours from there.
      s.stream = (path: string, o?: { start?: number; end?: number }) => {
        const length = Number(res.getHeader("Content-Length") ?? 0);
        sendBody(res, path, o?.start ?? 0, length, bodyChunkSize(activeTransfers)).then(resolve, () => {
          res.destroy();
          resolve();
        });
      };
      s.on("error", (err: { status?: number; message: string }) => {
        res.writeHead(err.status ?? 500, { "Content-Type": "text/plain" }).end(`${err.message}\n`);
        resolve();
      });
      s.on("end", () => resolve());
      res.on("close", () => resolve());
      s.pipe(res);
    });
  } finally {
    activeTransfers--;
  }
}

let sendModule: typeof SendModule | undefined;

/** Start serving `root`. Resolves once listening; `close()` stops it and drops open connections. */
export async function serveDirectory(opts: HttpServeOptions): Promise<RunningHttpServer> {
  let root: string;
  try {
    root = await realpath(opts.root);
  } catch {
    throw new KairosError(`cannot serve ${opts.root}: no such directory`, "build something into it first");
  }
  const { host, port } = parseListen(opts.listen ?? ":8080");
  const server = createServer((req, res) => {
    const started = Date.now();
    handle(root, req, res, opts.extra)
      .catch(() => {
        if (!res.headersSent) res.writeHead(500, { "Content-Type": "text/plain" }).end("internal error\n");
        else res.destroy();
      })
      .finally(() => {
        opts.onRequest?.(
          `${req.socket.remoteAddress ?? "?"} ${req.method} ${req.url} ${res.statusCode} ${Date.now() - started}ms${req.headers.range ? ` range=${req.headers.range}` : ""}`,
        );
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) =>
      reject(
        new KairosError(
          `cannot listen on ${opts.listen ?? ":8080"}: ${err.code ?? err.message}`,
          err.code === "EADDRINUSE"
            ? "another program uses that port; pick another one"
            : err.code === "EACCES"
              ? "ports below 1024 need root; pick a port above 1023"
              : undefined,
        ),
      ),
    );
    server.listen({ host, port }, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
  const urlHost = host ? shownHost : "127.0.0.1";
  return {
    server,
    address: `${shownHost}:${addr.port}`,
    port: addr.port,
    url: `http://${urlHost}:${addr.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Serve until SIGINT/SIGTERM (or `signal` aborts), then close cleanly. */
export async function serveUntilStopped(
  running: RunningHttpServer,
  signal?: AbortSignal,
): Promise<NodeJS.Signals | "abort"> {
  let onSig: ((s: NodeJS.Signals) => void) | undefined;
  const why = await new Promise<NodeJS.Signals | "abort">((resolve) => {
    onSig = (s: NodeJS.Signals) => resolve(s);
    process.once("SIGINT", onSig);
    process.once("SIGTERM", onSig);
    if (signal?.aborted) resolve("abort");
    signal?.addEventListener("abort", () => resolve("abort"), { once: true });
  });
  if (onSig) {
    process.off("SIGINT", onSig);
    process.off("SIGTERM", onSig);
  }
  await running.close();
  return why;
}
