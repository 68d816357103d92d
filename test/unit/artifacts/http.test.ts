import assert from "node:assert/strict";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { test } from "node:test";
import { parseListen, serveDirectory, serveUntilStopped } from "../../../src/netboot/index.js";
import { tempDir } from "../../helpers/tmp.js";

/** A raw GET/HEAD with the path sent exactly as given (fetch would normalize ".."). */
function get(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{ status: number; headers: Record<string, unknown>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

test("listen addresses parse like AuroraBoot's listen_addr", () => {
  assert.deepEqual(parseListen(":8080"), { host: undefined, port: 8080 });
  assert.deepEqual(parseListen("127.0.0.1:0"), { host: "127.0.0.1", port: 0 });
  assert.deepEqual(parseListen("[::1]:81"), { host: "::1", port: 81 });
  assert.deepEqual(parseListen("9000"), { host: undefined, port: 9000 });
  for (const bad of ["", "abc", ":99999", "1.2.3.4:x"])
    assert.throws(() => parseListen(bad), /not HOST:PORT/, bad);
});

test("serves files with byte ranges, lists directories, refuses escapes", async (t) => {
  const root = await tempDir(t);
  const outside = await tempDir(t);
  writeFileSync(join(outside, "secret"), "secret\n");
  const data = Buffer.alloc(100_000);
  for (let i = 0; i < data.length; i++) data[i] = i % 251;
  mkdirSync(join(root, "iso"));
  writeFileSync(join(root, "iso", "kairos.iso"), data);
  writeFileSync(join(root, ".hidden"), "x");
  symlinkSync(join(outside, "secret"), join(root, "escape"));
  symlinkSync("iso/kairos.iso", join(root, "inside-link"));
  const srv = await serveDirectory({ root, listen: "127.0.0.1:0" });
  t.after(() => srv.close());

  const full = await get(srv.port, "/iso/kairos.iso");
  assert.equal(full.status, 200);
  assert.deepEqual(full.body, data);
  assert.equal(full.headers["accept-ranges"], "bytes");

  const part = await get(srv.port, "/iso/kairos.iso", { Range: "bytes=1000-1999" });
  assert.equal(part.status, 206);
  assert.equal(part.headers["content-range"], `bytes 1000-1999/${data.length}`);
  assert.deepEqual(part.body, data.subarray(1000, 2000));

  const tailRange = await get(srv.port, "/iso/kairos.iso", { Range: "bytes=-10" });
  assert.equal(tailRange.status, 206);
  assert.deepEqual(tailRange.body, data.subarray(data.length - 10));

  const bad = await get(srv.port, "/iso/kairos.iso", { Range: "bytes=200000-300000" });
  assert.equal(bad.status, 416);

  const head = await get(srv.port, "/iso/kairos.iso", {}, "HEAD");
  assert.equal(head.status, 200);
  assert.equal(head.headers["content-length"], String(data.length));
  assert.equal(head.body.length, 0);

  const list = await get(srv.port, "/");
  assert.equal(list.status, 200);
  assert.equal(list.body.toString(), "escape\ninside-link\niso/\n");

  assert.equal((await get(srv.port, "/inside-link")).status, 200, "symlinks inside the root are fine");
  assert.equal((await get(srv.port, "/escape")).status, 403, "symlink out of the root");
  assert.equal((await get(srv.port, "/../../etc/passwd")).status, 403);
  assert.equal((await get(srv.port, "/iso/..%2f..%2fetc%2fpasswd")).status, 403);
  assert.equal((await get(srv.port, "/.hidden")).status, 403);
  assert.equal((await get(srv.port, "/nope")).status, 404);
  assert.equal((await get(srv.port, "/iso/kairos.iso", {}, "DELETE")).status, 405);
  assert.equal((await get(srv.port, "/%E0%A4%A")).status, 400);
});

test("serveUntilStopped closes the server on abort", async (t) => {
  const root = await tempDir(t);
  const srv = await serveDirectory({ root, listen: "127.0.0.1:0" });
  const ac = new AbortController();
  const stopped = serveUntilStopped(srv, ac.signal);
  ac.abort();
  assert.equal(await stopped, "abort");
  await assert.rejects(get(srv.port, "/"), /ECONNREFUSED/);
});

test("a port in use is a clear error", async (t) => {
  const root = await tempDir(t);
  const a = await serveDirectory({ root, listen: "127.0.0.1:0" });
  t.after(() => a.close());
  await assert.rejects(
    serveDirectory({ root, listen: `127.0.0.1:${a.port}` }),
    /cannot listen on .*EADDRINUSE/,
  );
});
