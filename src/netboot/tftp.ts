/**
 * A read-only TFTP server (RFC 1350) with blksize, tsize, timeout and windowsize. Every
 * transfer has its own socket (its TID) and one timer; it ends, freeing both, on the last
 * ACK, on a client ERROR, or when the client stops answering (retries exhausted). A duplicate
 * ACK never triggers a send (that is the sorcerer's-apprentice bug): data is re-sent only
 * when the timer fires, or at once from the block after an ACK that ends a window early
 * (RFC 7440). A retransmitted RRQ from a client already being served is ignored. Transfer
 * sockets are connected to their client: sends skip the address lookup (about 2× the
 * lock-step throughput) and the kernel drops packets from any other port, so a stray packet
 * cannot disturb a transfer (RFC 1350's "unknown transfer ID" error is not sent for it).
 */
import type { RemoteInfo, Socket } from "node:dgram";
import { type FileHandle, open, realpath } from "node:fs/promises";
import { resolveServed } from "./safe-path.js";
import {
  dataHeader,
  decodeTftp,
  encodeError,
  encodeOack,
  type Negotiated,
  negotiate,
  Op,
  TftpError,
  type TftpRequest,
} from "./tftp-packet.js";
import { bindUdp } from "./udp.js";

export interface TftpServerOptions {
  /** Directory served (read-only). */
  root: string;
  address?: string;
  /** Default 69. */
  port?: number;
  /** Transfers at once; further requests get "server busy" (default 256). */
  maxTransfers?: number;
  /** Retransmission timeout when the client does not ask for one (default 1000 ms). */
  timeoutMs?: number;
  /** Retransmissions before a silent client is dropped (default 5). */
  retries?: number;
  /** Largest window we accept (default 64 blocks). */
  maxWindow?: number;
  log?: (line: string) => void;
}

export interface TftpStats {
  served: number;
  failed: number;
  active: number;
}

export interface RunningTftpServer {
  port: number;
  stats(): TftpStats;
  close(): Promise<void>;
}

/** Bytes read from the file at a time: few thread-pool trips, bounded memory per transfer. */
const READ_AHEAD = 128 << 10;

class Transfer {
  private base = 1;
  private sentUpTo = 0;
  private retries = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly lastBlock: number;
  private oackPending: boolean;
  private closed = false;
  private chunk: { start: number; buf: Buffer } | undefined;

  constructor(
    private readonly sock: Socket,
    private readonly peer: RemoteInfo,
    private readonly fh: FileHandle,
    private readonly size: number,
    private readonly n: Negotiated,
    private readonly maxRetries: number,
    private readonly finish: (ok: boolean, why: string) => void,
  ) {
    // A file of k*blksize bytes ends with an empty block.
    this.lastBlock = Math.floor(size / n.blksize) + 1;
    this.oackPending = n.ack.size > 0;
    sock.on("message", (msg, from) => this.onMessage(msg, from));
    sock.on("error", () => this.end(false, "socket error"));
  }

  start(): void {
    this.sock.connect(this.peer.port, this.peer.address, () => this.begin());
  }

  private begin(): void {
    if (this.oackPending) this.sendOack();
    else this.sendWindow();
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.onTimeout(), this.n.timeoutMs);
  }

  private onTimeout(): void {
    if (this.closed) return;
    if (++this.retries > this.maxRetries) {
      this.end(false, `no answer after ${this.maxRetries} retransmissions`);
      return;
    }
    if (this.oackPending) this.sendOack();
    else this.sendWindow();
  }

  private send(parts: Buffer[]): void {
    if (this.closed) return;
    this.sock.send(parts);
  }

  private sendOack(): void {
    this.send([encodeOack(this.n.ack)]);
    this.arm();
  }

  /** Bytes [offset, offset+want) from the read-ahead chunk, reading the next chunk when needed. */
  private async bytes(offset: number, want: number): Promise<Buffer> {
    const c = this.chunk;
    if (c && offset >= c.start && offset + want <= c.start + c.buf.length) {
      return c.buf.subarray(offset - c.start, offset - c.start + want);
    }
    // Read ahead: most ACKs are then answered without a trip through the thread pool.
    const size = Math.max(want, READ_AHEAD - (READ_AHEAD % this.n.blksize));
    const buf = Buffer.allocUnsafe(Math.min(size, Math.max(0, this.size - offset)));
    let got = 0;
    while (got < buf.length) {
      const { bytesRead } = await this.fh.read(buf, got, buf.length - got, offset + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    this.chunk = { start: offset, buf: buf.subarray(0, got) };
    return this.chunk.buf.subarray(0, Math.min(want, got));
  }

  /** Send blocks base … base+window-1. */
  private sendWindow(): void {
    const first = this.base;
    const last = Math.min(first + this.n.windowsize - 1, this.lastBlock);
    const offset = (first - 1) * this.n.blksize;
    const want = Math.min((last - first + 1) * this.n.blksize, Math.max(0, this.size - offset));
    const c = this.chunk;
    if (c && offset >= c.start && offset + want <= c.start + c.buf.length) {
      this.emit(first, last, c.buf.subarray(offset - c.start, offset - c.start + want));
      return;
    }
    this.bytes(offset, want).then(
      (buf) => {
        if (!this.closed && first === this.base) this.emit(first, last, buf);
      },
      () => {
        this.sendError(TftpError.UNDEFINED, "read error");
        this.end(false, "read error");
      },
    );
  }

  private emit(first: number, last: number, buf: Buffer): void {
    const got = buf.length;
    for (let b = first; b <= last; b++) {
      const from = (b - first) * this.n.blksize;
      this.send([dataHeader(b), buf.subarray(Math.min(from, got), Math.min(from + this.n.blksize, got))]);
    }
    this.sentUpTo = last;
    this.arm();
  }

  private sendError(code: number, message: string): void {
    this.send([encodeError(code, message)]);
  }

  private onMessage(msg: Buffer, from: RemoteInfo): void {
    if (this.closed) return;
    // The socket is connected to the client, so the kernel already drops other senders.
    if (from.address !== this.peer.address || from.port !== this.peer.port) return;
    let p: ReturnType<typeof decodeTftp>;
    try {
      p = decodeTftp(msg);
    } catch {
      return;
    }
    if (p.op === Op.ERROR) {
      this.end(false, `client error ${p.code} ${p.message}`);
      return;
    }
    if (p.op !== Op.ACK) return;
    if (this.oackPending) {
      if (p.block !== 0) return;
      this.oackPending = false;
      this.retries = 0;
      this.sendWindow();
      return;
    }
    // Which absolute block does this 16-bit number acknowledge? Only base-1 … sentUpTo count.
    let acked = -1;
    for (let b = this.sentUpTo; b >= this.base; b--) {
      if ((b & 0xffff) === p.block) {
        acked = b;
        break;
      }
    }
    // A duplicate or stale ACK: ignore it (never answer it with data).
    if (acked < 0) return;
    this.retries = 0;
    if (acked === this.lastBlock) {
      this.end(true, "done");
      return;
    }
    // A whole window acknowledged, or an early ACK (the client lost acked+1): go on from acked+1.
    this.base = acked + 1;
    this.sendWindow();
  }

  end(ok: boolean, why: string): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.sock.close();
    void this.fh.close().catch(() => {});
    this.finish(ok, why);
  }
}

/** Serve `root` over TFTP until close(). */
export async function startTftpServer(opts: TftpServerOptions): Promise<RunningTftpServer> {
  const root = await realpath(opts.root);
  const address = opts.address ?? "0.0.0.0";
  const max = opts.maxTransfers ?? 256;
  const transfers = new Map<string, Transfer>();
  const stats = { served: 0, failed: 0 };
  const log = opts.log ?? (() => {});
  const main = await bindUdp({ address, port: opts.port ?? 69, what: "TFTP" }, "--tftp-port");

  const reply = (to: RemoteInfo, code: number, message: string) =>
    main.send(encodeError(code, message), to.port, to.address, () => {});

  async function onRequest(req: TftpRequest, from: RemoteInfo, key: string): Promise<void> {
    if (req.op === Op.WRQ) return reply(from, TftpError.ACCESS, "read-only server");
    if (req.mode !== "octet")
      return reply(from, TftpError.ILLEGAL, `mode ${req.mode} not supported, use octet`);
    const r = await resolveServed(root, req.filename);
    if ("refused" in r) {
      log(`tftp ${from.address} ${req.filename}: refused (${r.refused})`);
      return reply(from, TftpError.ACCESS, "access violation");
    }
    if ("missing" in r) {
      log(`tftp ${from.address} ${req.filename}: not found`);
      return reply(from, TftpError.NOT_FOUND, "file not found");
    }
    // A retransmitted RRQ that arrived while we resolved the path.
    if (transfers.has(key)) return;
    const n = negotiate(req.options, r.size, {
      defaultTimeoutMs: opts.timeoutMs ?? 1000,
      maxWindow: opts.maxWindow ?? 64,
    });
    const fh = await open(r.path, "r");
    let sock: Socket;
    try {
      sock = await bindUdp({ address, port: 0, what: "a TFTP transfer" });
    } catch (err) {
      await fh.close();
      throw err;
    }
    const started = Date.now();
    const t = new Transfer(sock, from, fh, r.size, n, opts.retries ?? 5, (ok, why) => {
      transfers.delete(key);
      if (ok) stats.served++;
      else stats.failed++;
      log(
        `tftp ${from.address}:${from.port} ${req.filename} ${ok ? "sent" : `failed (${why})`} ${r.size} bytes ${Date.now() - started}ms blksize=${n.blksize} window=${n.windowsize}`,
      );
    });
    transfers.set(key, t);
    t.start();
  }

  const pending = new Set<string>();
  main.on("message", (msg, from) => {
    const key = `${from.address}:${from.port}`;
    // A retransmitted request from a client we already serve (or are about to): ignore it.
    if (transfers.has(key) || pending.has(key)) return;
    let p: ReturnType<typeof decodeTftp>;
    try {
      p = decodeTftp(msg);
    } catch (err) {
      reply(from, TftpError.ILLEGAL, (err as Error).message);
      return;
    }
    if (p.op !== Op.RRQ && p.op !== Op.WRQ) {
      reply(from, TftpError.UNKNOWN_TID, "unknown transfer ID");
      return;
    }
    if (p.op === Op.RRQ && transfers.size + pending.size >= max) {
      reply(from, TftpError.UNDEFINED, "server busy, try again");
      return;
    }
    pending.add(key);
    onRequest(p, from, key)
      .catch((err: unknown) => {
        log(`tftp ${key}: ${(err as Error).message}`);
        reply(from, TftpError.UNDEFINED, "internal error");
      })
      .finally(() => pending.delete(key));
  });
  main.on("error", (err) => log(`tftp socket error: ${err.message}`));

  return {
    port: main.address().port,
    stats: () => ({ ...stats, active: transfers.size }),
    close: async () => {
      for (const t of [...transfers.values()]) t.end(false, "server stopped");
      await new Promise<void>((resolve) => main.close(() => resolve()));
    },
  };
}
