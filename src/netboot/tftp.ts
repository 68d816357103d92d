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
import { FileCache, type FileCacheLimits } from "./file-cache.js";
import { resolveServed } from "./safe-path.js";
import {
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
  /** Small files served from memory (default: up to 8 MiB a file, 64 MiB in all). */
  cache?: FileCacheLimits;
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

/** Bytes of file per chunk of prepared packets: few thread-pool trips, bounded memory per transfer. */
const CHUNK_BYTES = 128 << 10;

/** Where a transfer's bytes come from: the whole file in memory (FileCache) or an open file. */
type TransferSource = { data: Buffer } | { fh: FileHandle };

/**
 * DATA packets for blocks first … first+count-1, laid out back to back (header and payload
 * each), so a block goes out as one buffer with no allocation or copy at send time.
 */
interface Chunk {
  first: number;
  count: number;
  packets: Buffer;
}

class Transfer {
  private base = 1;
  private sentUpTo = 0;
  private retries = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly lastBlock: number;
  private readonly chunkBlocks: number;
  private oackPending: boolean;
  private closed = false;
  private chunk: Chunk | undefined;
  /** The chunk after `chunk`, being read while `chunk` is sent (file sources). */
  private ahead: { first: number; chunk: Promise<Chunk> } | undefined;

  constructor(
    private readonly sock: Socket,
    private readonly peer: RemoteInfo,
    private readonly source: TransferSource,
    private readonly size: number,
    private readonly n: Negotiated,
    private readonly maxRetries: number,
    private readonly finish: (ok: boolean, why: string) => void,
  ) {
    // A file of k*blksize bytes ends with an empty block.
    this.lastBlock = Math.floor(size / n.blksize) + 1;
    // Whole windows per chunk, so a window never straddles two chunks when windows advance evenly.
    const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / n.blksize));
    this.chunkBlocks = Math.ceil(perChunk / n.windowsize) * n.windowsize;
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

  /** (Re)start the retransmission timer: one Timeout per transfer, refreshed per window. */
  private arm(): void {
    if (this.timer) this.timer.refresh();
    else this.timer = setTimeout(() => this.onTimeout(), this.n.timeoutMs);
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

  private send(packet: Buffer): void {
    if (this.closed) return;
    this.sock.send(packet);
  }

  private sendOack(): void {
    this.send(encodeOack(this.n.ack));
    this.arm();
  }

  /** Payload bytes of block `b` (the last block may be short or empty). */
  private payload(b: number): number {
    return Math.max(0, Math.min(this.n.blksize, this.size - (b - 1) * this.n.blksize));
  }

  /** Lay out the packets of blocks first … first+count-1 from their file bytes `raw`. */
  private layout(first: number, count: number, raw: Buffer): Chunk {
    const stride = this.n.blksize + 4;
    const packets = Buffer.allocUnsafe(count * stride);
    for (let i = 0; i < count; i++) {
      const at = i * stride;
      packets.writeUInt16BE(Op.DATA, at);
      packets.writeUInt16BE((first + i) & 0xffff, at + 2);
      const from = i * this.n.blksize;
      raw.copy(packets, at + 4, from, Math.min(from + this.n.blksize, raw.length));
    }
    return { first, count, packets };
  }

  /** The chunk starting at block `first`: at once from memory, else read from the file. */
  private load(first: number): Chunk | Promise<Chunk> {
    const count = Math.min(this.chunkBlocks, this.lastBlock - first + 1);
    const offset = (first - 1) * this.n.blksize;
    const bytes = Math.max(0, Math.min(count * this.n.blksize, this.size - offset));
    if ("data" in this.source)
      return this.layout(first, count, this.source.data.subarray(offset, offset + bytes));
    const fh = this.source.fh;
    return (async () => {
      const raw = Buffer.allocUnsafe(bytes);
      let got = 0;
      while (got < bytes) {
        const { bytesRead } = await fh.read(raw, got, bytes - got, offset + got);
        if (bytesRead === 0) throw new Error("file shrank while being sent");
        got += bytesRead;
      }
      return this.layout(first, count, raw);
    })();
  }

  /** Use `c` for sending and start reading the chunk after it (file sources only). */
  private use(c: Chunk): void {
    this.chunk = c;
    const next = c.first + c.count;
    if ("fh" in this.source && next <= this.lastBlock && this.ahead?.first !== next) {
      const chunk = Promise.resolve(this.load(next));
      chunk.catch(() => {});
      this.ahead = { first: next, chunk };
    }
  }

  /** Send blocks base … base+window-1. */
  private sendWindow(): void {
    const first = this.base;
    const last = Math.min(first + this.n.windowsize - 1, this.lastBlock);
    const c = this.chunk;
    if (c && first >= c.first && last < c.first + c.count) {
      this.emit(first, last, c);
      return;
    }
    const pending = this.ahead?.first === first ? this.ahead.chunk : this.load(first);
    if (!(pending instanceof Promise)) {
      this.use(pending);
      this.emit(first, last, pending);
      return;
    }
    pending.then(
      (chunk) => {
        if (this.closed || first !== this.base) return;
        this.use(chunk);
        this.emit(first, last, chunk);
      },
      () => {
        this.sendError(TftpError.UNDEFINED, "read error");
        this.end(false, "read error");
      },
    );
  }

  private emit(first: number, last: number, c: Chunk): void {
    const stride = this.n.blksize + 4;
    for (let b = first; b <= last; b++) {
      const at = (b - c.first) * stride;
      this.send(c.packets.subarray(at, at + 4 + this.payload(b)));
    }
    this.sentUpTo = last;
    this.arm();
  }

  private sendError(code: number, message: string): void {
    this.send(encodeError(code, message));
  }

  private onMessage(msg: Buffer, from: RemoteInfo): void {
    if (this.closed) return;
    // The socket is connected to the client, so the kernel already drops other senders.
    if (from.address !== this.peer.address || from.port !== this.peer.port) return;
    // The common case, an ACK, without decoding into an object.
    if (msg.length === 4 && msg[0] === 0 && msg[1] === Op.ACK) {
      this.onAck(msg.readUInt16BE(2));
      return;
    }
    let p: ReturnType<typeof decodeTftp>;
    try {
      p = decodeTftp(msg);
    } catch {
      return;
    }
    if (p.op === Op.ERROR) this.end(false, `client error ${p.code} ${p.message}`);
  }

  private onAck(block: number): void {
    if (this.oackPending) {
      if (block !== 0) return;
      this.oackPending = false;
      this.retries = 0;
      this.sendWindow();
      return;
    }
    // Which absolute block does this 16-bit number acknowledge? Only base-1 … sentUpTo count.
    let acked = -1;
    for (let b = this.sentUpTo; b >= this.base; b--) {
      if ((b & 0xffff) === block) {
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
    this.chunk = undefined;
    this.ahead = undefined;
    if ("fh" in this.source) {
      const fh = this.source.fh;
      void fh.close().catch(() => {});
    }
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
  const cache = new FileCache(opts.cache);
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
    const cached = cache.get(r);
    const source: TransferSource = cached ? { data: await cached } : { fh: await open(r.path, "r") };
    // A file replaced since the stat is sent as read (its new size, also in tsize).
    const size = "data" in source ? source.data.length : r.size;
    const n = negotiate(req.options, size, {
      defaultTimeoutMs: opts.timeoutMs ?? 1000,
      maxWindow: opts.maxWindow ?? 64,
    });
    let sock: Socket;
    try {
      sock = await bindUdp({ address, port: 0, what: "a TFTP transfer" });
    } catch (err) {
      if ("fh" in source) await source.fh.close();
      throw err;
    }
    const started = Date.now();
    const t = new Transfer(sock, from, source, size, n, opts.retries ?? 5, (ok, why) => {
      transfers.delete(key);
      if (ok) stats.served++;
      else stats.failed++;
      log(
        `tftp ${from.address}:${from.port} ${req.filename} ${ok ? "sent" : `failed (${why})`} ${size} bytes ${Date.now() - started}ms blksize=${n.blksize} window=${n.windowsize}`,
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
