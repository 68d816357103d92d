import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  decodeTftp,
  encodeAck,
  encodeRequest,
  negotiate,
  Op,
  type RunningTftpServer,
  startTftpServer,
  TftpError,
  TftpPacketError,
} from "../../../src/netboot/index.js";
import { TftpClientError, tftpGet } from "../../helpers/netboot-client.js";

const HOST = "127.0.0.1";

async function udp(): Promise<Socket> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, HOST, () => r()));
  return s;
}

/** Collect what arrives on `s` for `ms`. */
function collect(s: Socket, ms: number): Promise<{ msg: Buffer; port: number }[]> {
  const got: { msg: Buffer; port: number }[] = [];
  const on = (msg: Buffer, from: { port: number }) => got.push({ msg, port: from.port });
  s.on("message", on);
  return new Promise((r) =>
    setTimeout(() => {
      s.off("message", on);
      r(got);
    }, ms),
  );
}

function waitFor(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const t = setInterval(() => {
      if (cond()) {
        clearInterval(t);
        resolve();
      } else if (Date.now() > end) {
        clearInterval(t);
        reject(new Error("condition not met in time"));
      }
    }, 10);
  });
}

describe("TFTP server", () => {
  let root: string;
  let srv: RunningTftpServer;
  const small = randomBytes(3000);
  const exact = randomBytes(1024);
  const big = randomBytes(700_000);

  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), "kairos-tftp-"));
    root = join(work, "root");
    await mkdir(join(root, "sub"), { recursive: true });
    await writeFile(join(root, "small.bin"), small);
    await writeFile(join(root, "exact.bin"), exact);
    await writeFile(join(root, "big.bin"), big);
    await writeFile(join(root, ".hidden"), "x");
    await writeFile(join(work, "secret"), "outside");
    await symlink(join(work, "secret"), join(root, "out-link"));
    await symlink("../small.bin", join(root, "sub", "in-link"));
    await symlink(join(root, "small.bin"), join(root, "sub", "abs-link"));
    srv = await startTftpServer({
      root,
      address: HOST,
      port: 0,
      timeoutMs: 150,
      retries: 2,
      maxTransfers: 4,
    });
  });
  after(async () => {
    await srv.close();
    await rm(work, { recursive: true, force: true });
  });

  it("plain RFC 1350 transfer (512-byte blocks, no options)", async () => {
    const r = await tftpGet({ host: HOST, port: srv.port, file: "small.bin" });
    assert.deepEqual(r.data, small);
    assert.equal(r.oack, undefined);
  });

  it("a file of exactly k blocks ends with an empty block", async () => {
    const r = await tftpGet({ host: HOST, port: srv.port, file: "exact.bin" });
    assert.deepEqual(r.data, exact);
  });

  it("blksize, tsize, timeout and windowsize are acknowledged in an OACK", async () => {
    const r = await tftpGet({
      host: HOST,
      port: srv.port,
      file: "big.bin",
      options: { blksize: "1468", tsize: "0", timeout: "3", windowsize: "16" },
    });
    assert.deepEqual(r.data, big);
    assert.equal(r.oack?.get("blksize"), "1468");
    assert.equal(r.oack?.get("tsize"), String(big.length));
    assert.equal(r.oack?.get("timeout"), "3");
    assert.equal(r.oack?.get("windowsize"), "16");
  });

  it("block numbers wrap around past 65535 blocks", async () => {
    const r = await tftpGet({
      host: HOST,
      port: srv.port,
      file: "big.bin",
      options: { blksize: "8", windowsize: "64" },
    });
    assert.ok(big.length / 8 > 65536);
    assert.deepEqual(r.data, big);
  });

  it("symlinks inside the root are served", async () => {
    assert.deepEqual((await tftpGet({ host: HOST, port: srv.port, file: "sub/in-link" })).data, small);
    assert.deepEqual((await tftpGet({ host: HOST, port: srv.port, file: "sub/abs-link" })).data, small);
  });

  for (const [name, code] of [
    ["../secret", TftpError.ACCESS],
    ["sub/../../secret", TftpError.ACCESS],
    ["/etc/passwd", TftpError.ACCESS],
    ["out-link", TftpError.ACCESS],
    [".hidden", TftpError.ACCESS],
    ["sub\\..\\..\\secret", TftpError.ACCESS],
    ["missing.bin", TftpError.NOT_FOUND],
    ["sub", TftpError.NOT_FOUND],
  ] as const) {
    it(`refuses '${name}' with error ${code}`, async () => {
      await assert.rejects(
        tftpGet({ host: HOST, port: srv.port, file: name }),
        (e: unknown) => e instanceof TftpClientError && e.code === code,
      );
    });
  }

  it("refuses writes and netascii", async () => {
    const s = await udp();
    try {
      const wait = collect(s, 300);
      s.send(encodeRequest({ op: Op.WRQ, filename: "x", mode: "octet", options: new Map() }), srv.port, HOST);
      s.send(encodeRequest({ filename: "small.bin", mode: "netascii", options: new Map() }), srv.port, HOST);
      const codes = (await wait).map((g) => decodeTftp(g.msg)).map((p) => (p.op === Op.ERROR ? p.code : -1));
      assert.deepEqual(codes.sort(), [TftpError.ACCESS, TftpError.ILLEGAL].sort());
    } finally {
      s.close();
    }
  });

  it("a duplicate ACK is not answered with data (no sorcerer's apprentice)", async () => {
    const s = await udp();
    try {
      const first = collect(s, 100);
      s.send(encodeRequest({ filename: "small.bin", mode: "octet", options: new Map() }), srv.port, HOST);
      const [d1] = await first;
      const p1 = decodeTftp(d1!.msg);
      assert.equal(p1.op === Op.DATA && p1.block, 1);
      const next = collect(s, 120);
      s.send(encodeAck(1), d1!.port, HOST);
      s.send(encodeAck(1), d1!.port, HOST);
      s.send(encodeAck(1), d1!.port, HOST);
      const blocks = (await next).map((g) => decodeTftp(g.msg)).filter((p) => p.op === Op.DATA);
      // Within 120 ms (< the 150 ms retransmission timer) exactly one block 2, not three.
      assert.deepEqual(
        blocks.map((p) => (p.op === Op.DATA ? p.block : 0)),
        [2],
      );
    } finally {
      s.close();
    }
  });

  it("a retransmitted RRQ does not start a second transfer; another sender cannot disturb it", async () => {
    const s = await udp();
    const other = await udp();
    try {
      const got = collect(s, 100);
      const rrq = encodeRequest({ filename: "small.bin", mode: "octet", options: new Map() });
      s.send(rrq, srv.port, HOST);
      s.send(rrq, srv.port, HOST);
      const data = (await got).filter((g) => decodeTftp(g.msg).op === Op.DATA);
      assert.equal(new Set(data.map((d) => d.port)).size, 1, "one transfer socket");
      assert.equal(data.length, 1, "block 1 sent once");
      // A stranger ACKs block 1 and sends an ERROR: the transfer neither moves nor ends.
      const stray = collect(other, 100);
      const mine = collect(s, 100);
      other.send(encodeAck(1), data[0]!.port, HOST);
      other.send(Buffer.from([0, 5, 0, 0, 0]), data[0]!.port, HOST);
      assert.equal((await stray).length, 0);
      // (Block 1 may come again: the 150 ms retransmission timer.)
      const blocks = (await mine).map((g) => decodeTftp(g.msg)).map((p) => (p.op === Op.DATA ? p.block : -1));
      assert.ok(!blocks.includes(2), "no block 2 for a stranger's ACK");
      const next = collect(s, 100);
      s.send(encodeAck(1), data[0]!.port, HOST);
      const b2 = (await next).map((g) => decodeTftp(g.msg)).map((p) => (p.op === Op.DATA ? p.block : -1));
      assert.ok(b2.includes(2), "the real client's ACK still works");
    } finally {
      s.close();
      other.close();
    }
  });

  it("a client that vanishes mid-transfer is dropped after the retries: socket and timer freed", async () => {
    // Earlier tests' transfers (abandoned, or their last ACK not yet read) end first.
    await waitFor(() => srv.stats().active === 0, 3000);
    const before = srv.stats();
    const s = await udp();
    s.send(encodeRequest({ filename: "big.bin", mode: "octet", options: new Map() }), srv.port, HOST);
    await waitFor(() => srv.stats().active === before.active + 1, 1000);
    s.close();
    // 150 ms timer × (2 retries + 1).
    await waitFor(() => srv.stats().active === before.active, 2000);
    assert.equal(srv.stats().failed, before.failed + 1);
  });

  it("at most maxTransfers at once; the next client is told the server is busy", async () => {
    // Earlier tests' abandoned transfers time out first.
    await waitFor(() => srv.stats().active === 0, 3000);
    const socks = await Promise.all([1, 2, 3, 4, 5].map(() => udp()));
    try {
      const replies = socks.map((s) => collect(s, 100));
      for (const s of socks)
        s.send(encodeRequest({ filename: "big.bin", mode: "octet", options: new Map() }), srv.port, HOST);
      const first = await Promise.all(replies);
      const busy = first.filter((g) =>
        g.some((m) => {
          const p = decodeTftp(m.msg);
          return p.op === Op.ERROR && /busy/.test(p.message);
        }),
      );
      assert.equal(busy.length, 1);
    } finally {
      for (const s of socks) s.close();
    }
    await waitFor(() => srv.stats().active === 0, 3000);
  });

  it("3000 malformed packets to the server and to a transfer socket: it keeps serving", async () => {
    const s = await udp();
    let x = 99;
    const r = () => {
      x = (x * 1103515245 + 12345) & 0x7fffffff;
      return x / 0x7fffffff;
    };
    const good = encodeRequest({
      filename: "small.bin",
      mode: "octet",
      options: new Map([["blksize", "1024"]]),
    });
    try {
      for (let i = 0; i < 3000; i++) {
        const buf = i % 3 === 0 ? Buffer.from(good) : Buffer.alloc(Math.floor(r() * 80));
        for (let k = 0; k < 4; k++) buf[Math.floor(r() * buf.length)] = Math.floor(r() * 256);
        if (i % 5 === 0 && buf.length >= 2) buf.writeUInt16BE(1 + Math.floor(r() * 6), 0);
        s.send(buf, srv.port, HOST);
        if (i % 20 === 0) await new Promise((res) => setTimeout(res, 1));
      }
    } finally {
      s.close();
    }
    const r2 = await tftpGet({ host: HOST, port: srv.port, file: "small.bin", options: { blksize: "1024" } });
    assert.deepEqual(r2.data, small);
    await waitFor(() => srv.stats().active === 0, 3000);
  });
});

describe("TFTP server reading from disk (files not kept in memory)", () => {
  let work: string;
  let srv: RunningTftpServer;
  // Over several 128 KiB chunks, and one that ends exactly on a chunk of 1468-byte blocks.
  const big = randomBytes(1_000_003);
  const aligned = randomBytes(89 * 1468 * 2);
  before(async () => {
    work = await mkdtemp(join(tmpdir(), "kairos-tftp-disk-"));
    await writeFile(join(work, "big.bin"), big);
    await writeFile(join(work, "aligned.bin"), aligned);
    srv = await startTftpServer({
      root: work,
      address: HOST,
      port: 0,
      timeoutMs: 150,
      retries: 2,
      cache: { maxFileBytes: 0 },
    });
  });
  after(async () => {
    await srv.close();
    await rm(work, { recursive: true, force: true });
  });

  it("lock-step and windowed transfers across chunk boundaries (read ahead while sending)", async () => {
    const variants: Record<string, string>[] = [
      {},
      { blksize: "1468" },
      { blksize: "1468", windowsize: "16" },
      { blksize: "1000", windowsize: "7" },
    ];
    for (const options of variants) {
      assert.deepEqual((await tftpGet({ host: HOST, port: srv.port, file: "big.bin", options })).data, big);
    }
    const r = await tftpGet({
      host: HOST,
      port: srv.port,
      file: "aligned.bin",
      options: { blksize: "1468" },
    });
    assert.deepEqual(r.data, aligned);
  });

  it("a client that vanishes mid-transfer is dropped; its file and socket are closed", async () => {
    await waitFor(() => srv.stats().active === 0, 3000);
    const before = srv.stats();
    const s = await udp();
    s.send(encodeRequest({ filename: "big.bin", mode: "octet", options: new Map() }), srv.port, HOST);
    await waitFor(() => srv.stats().active === before.active + 1, 1000);
    s.close();
    await waitFor(() => srv.stats().active === before.active, 2000);
    assert.equal(srv.stats().failed, before.failed + 1);
  });
});

describe("TFTP server: files kept in memory", () => {
  it("a file replaced between two transfers is sent as it is now", async () => {
    const work = await mkdtemp(join(tmpdir(), "kairos-tftp-mem-"));
    const srv = await startTftpServer({ root: work, address: HOST, port: 0 });
    try {
      const one = randomBytes(5000);
      const two = randomBytes(7000);
      await writeFile(join(work, "f.bin"), one);
      assert.deepEqual((await tftpGet({ host: HOST, port: srv.port, file: "f.bin" })).data, one);
      assert.deepEqual((await tftpGet({ host: HOST, port: srv.port, file: "f.bin" })).data, one);
      await writeFile(join(work, "f.bin"), two);
      const r = await tftpGet({ host: HOST, port: srv.port, file: "f.bin", options: { tsize: "0" } });
      assert.deepEqual(r.data, two);
      assert.equal(r.oack?.get("tsize"), "7000");
    } finally {
      await srv.close();
      await rm(work, { recursive: true, force: true });
    }
  });
});

describe("TFTP packets", () => {
  it("decoder refuses what is not a TFTP packet", () => {
    for (const bad of [
      Buffer.alloc(0),
      Buffer.from([0, 1, 65]),
      Buffer.from([0, 1, 65, 0]),
      Buffer.from([0, 4, 0, 1, 9]),
      Buffer.from([0, 9, 0, 0]),
      Buffer.from([0, 1, 0, 111, 99, 116, 101, 116, 0]),
    ]) {
      assert.throws(() => decodeTftp(bad), TftpPacketError, bad.toString("hex"));
    }
  });

  it("negotiation keeps values inside the RFC bounds and ignores the rest", () => {
    const n = negotiate(
      new Map([
        ["blksize", "99999"],
        ["tsize", "0"],
        ["timeout", "0"],
        ["windowsize", "500"],
        ["foo", "1"],
      ]),
      1234,
      { defaultTimeoutMs: 1000, maxWindow: 64 },
    );
    assert.equal(n.blksize, 65464);
    assert.equal(n.windowsize, 64);
    assert.equal(n.timeoutMs, 1000);
    assert.deepEqual([...n.ack.keys()], ["blksize", "tsize", "windowsize"]);
    assert.equal(n.ack.get("tsize"), "1234");
    assert.equal(
      negotiate(new Map([["blksize", "4"]]), 1, { defaultTimeoutMs: 1, maxWindow: 1 }).ack.size,
      0,
    );
  });
});
