/**
 * The HTTP server's file bodies (sendBody in src/netboot/http.ts): pieces are reused across
 * pieces and transfers, so a reuse too early would send another transfer's bytes. Checked
 * with files of several pieces, ranges that cross pieces, transfers side by side, a client
 * that goes away mid-body (its file closed) and a file that shrinks underneath.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readdirSync, readlinkSync, truncateSync, writeFileSync } from "node:fs";
import { createServer, get as httpGet, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { sendBody, serveDirectory } from "../../../src/netboot/index.js";
import { tempDir } from "../../helpers/tmp.js";

const MIB = 1 << 20;

function patterned(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  for (let i = size - (size % 4); i < size; i++) b[i] = (i + seed) & 0xff;
  return b;
}

/**
 * GET `url` whole. `slow`: stop reading for a while after the first chunk, so that the socket
 * fills and the server's writes wait (a piece reused before its write finished shows then).
 */
function fetchAll(
  url: string,
  headers: Record<string, string> = {},
  slow = false,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    httpGet(url, { headers }, (res: IncomingMessage) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => {
        parts.push(c);
        if (slow && parts.length === 1) {
          res.pause();
          setTimeout(() => res.resume(), 300);
        }
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(parts) }));
      res.on("error", reject);
    }).on("error", reject);
  });
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** Open descriptors of this process that point at `file`. */
function openCount(file: string): number {
  let n = 0;
  for (const fd of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === file) n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

test("files of many pieces, ranges across pieces and transfers side by side arrive intact", async (t) => {
  const root = await tempDir(t);
  // Larger than what loopback's socket buffers hold (so the slow readers make writes wait),
  // and not a whole number of pieces.
  const a = patterned(40 * MIB + 3, 1);
  const b = patterned(24 * MIB + 11, 2);
  writeFileSync(join(root, "a.bin"), a);
  writeFileSync(join(root, "b.bin"), b);
  const srv = await serveDirectory({ root, listen: "127.0.0.1:0" });
  t.after(() => srv.close());

  for (let round = 0; round < 2; round++) {
    const got = await Promise.all([
      fetchAll(`${srv.url}/a.bin`, {}, true),
      fetchAll(`${srv.url}/b.bin`, {}, true),
      fetchAll(`${srv.url}/a.bin`),
      fetchAll(`${srv.url}/b.bin`, { Range: `bytes=${4 * MIB - 5}-${6 * MIB}` }),
    ]);
    assert.equal(sha(got[0]!.body), sha(a), `round ${round}: a.bin`);
    assert.equal(sha(got[1]!.body), sha(b), `round ${round}: b.bin`);
    assert.equal(sha(got[2]!.body), sha(a), `round ${round}: a.bin again`);
    assert.equal(got[3]!.status, 206);
    assert.ok(
      got[3]!.body.equals(b.subarray(4 * MIB - 5, 6 * MIB + 1)),
      `round ${round}: range across pieces`,
    );
  }
});

test("a client that goes away mid-body stops the transfer and its file is closed", async (t) => {
  const root = await tempDir(t);
  const file = join(root, "big.bin");
  writeFileSync(file, patterned(32 * MIB, 3));
  const srv = await serveDirectory({ root, listen: "127.0.0.1:0" });
  t.after(() => srv.close());
  await new Promise<void>((resolve, reject) => {
    const req = httpGet(`${srv.url}/big.bin`, (res) => {
      let seen = 0;
      res.on("data", (c: Buffer) => {
        seen += c.length;
        if (seen > MIB) {
          req.destroy();
          resolve();
        }
      });
    });
    req.on("error", () => resolve());
    setTimeout(() => reject(new Error("no body")), 10_000).unref();
  });
  const end = Date.now() + 5000;
  while (openCount(file) > 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.equal(openCount(file), 0, "the server closed the file");
  // The server still serves whole files afterwards.
  const again = await fetchAll(`${srv.url}/big.bin`);
  assert.equal(again.body.length, 32 * MIB);
});

test("a file that became shorter ends the response early, never with other bytes", async (t) => {
  const root = await tempDir(t);
  const file = join(root, "f.bin");
  const data = patterned(5 * MIB, 4);
  writeFileSync(file, data);
  let failure: unknown;
  const srv = createServer((_req, res) => {
    res.writeHead(200, { "Content-Length": 5 * MIB });
    truncateSync(file, 3 * MIB);
    sendBody(res, file, 0, 5 * MIB, 4 * MIB - 256 * 1024).catch((err: unknown) => {
      failure = err;
      res.destroy();
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  t.after(() => srv.close());
  const port = (srv.address() as AddressInfo).port;
  const got = await new Promise<Buffer>((resolve) => {
    const parts: Buffer[] = [];
    httpGet(`http://127.0.0.1:${port}/`, (res) => {
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("error", () => resolve(Buffer.concat(parts)));
      res.on("aborted", () => resolve(Buffer.concat(parts)));
      res.on("end", () => resolve(Buffer.concat(parts)));
    }).on("error", () => resolve(Buffer.concat(parts)));
  });
  assert.match(String(failure), /became shorter while it was being sent/);
  assert.ok(got.length <= 3 * MIB, "no more bytes than the file had");
  assert.ok(got.equals(data.subarray(0, got.length)), "the bytes sent are the file's");
});
