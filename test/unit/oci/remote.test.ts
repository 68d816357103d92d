import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { describe, it } from "node:test";
import { lookupCredentials, parseChallenge, parseCreds } from "../../../src/oci/auth.js";
import { Registry } from "../../../src/oci/remote.js";
import { collect, tempDir } from "../../helpers/tmp.js";

/**
 * A tiny real HTTP server speaking the two registry endpoints a blob download needs; it cuts the
 * first `cuts` responses after `cutAfter` bytes and honours Range requests, like a flaky CDN.
 */
async function flakyBlobServer(blob: Buffer, cuts: number, cutAfter: number, honourRange = true) {
  const ranges: string[] = [];
  let remainingCuts = cuts;
  const server: Server = createServer((req, res) => {
    if (req.url === "/v2/") {
      res.writeHead(200).end("{}");
      return;
    }
    const range = req.headers.range;
    ranges.push(range ?? "");
    let start = 0;
    const m = /^bytes=(\d+)-$/.exec(range ?? "");
    if (m && honourRange) start = Number(m[1]);
    const body = blob.subarray(start);
    res.writeHead(m && honourRange ? 206 : 200, { "content-length": body.length });
    if (remainingCuts > 0) {
      remainingCuts--;
      res.write(body.subarray(0, cutAfter), () => res.socket?.destroy());
      return;
    }
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { host: `127.0.0.1:${port}`, ranges, close: () => new Promise((r) => server.close(r)) };
}

describe("registry blob download", () => {
  const blob = Buffer.alloc(3 * 1024 * 1024, 7);
  blob.write("start");
  const desc = {
    mediaType: "application/octet-stream",
    digest: `sha256:${createHash("sha256").update(blob).digest("hex")}`,
    size: blob.length,
  };

  it("resumes a dropped download with an HTTP Range request", async (t) => {
    const srv = await flakyBlobServer(blob, 2, 100_000);
    t.after(srv.close);
    const reg = new Registry(srv.host, { authFiles: [] });
    const got = await collect(reg.openBlob("r", desc, "test"));
    assert.deepEqual(got, blob);
    assert.equal(srv.ranges[0], "");
    assert.match(srv.ranges[1]!, /^bytes=\d+-$/);
    assert.equal(srv.ranges.length, 3);
  });

  it("resumes correctly when the server ignores Range (skips what it already has)", async (t) => {
    const srv = await flakyBlobServer(blob, 1, 70_000, false);
    t.after(srv.close);
    const reg = new Registry(srv.host, { authFiles: [] });
    assert.deepEqual(await collect(reg.openBlob("r", desc, "test")), blob);
  });

  it("gives up after the retry budget with a message naming the blob", async (t) => {
    const srv = await flakyBlobServer(blob, 10, 1000);
    t.after(srv.close);
    const reg = new Registry(srv.host, { authFiles: [], retries: 2 });
    await assert.rejects(
      collect(reg.openBlob("r", desc, "test")),
      /download of blob sha256:[0-9a-f]+ failed after 3 attempts/,
    );
  });
});

describe("registry blob redirects", () => {
  it("follows a redirect to blob storage on another host without sending credentials there", async (t) => {
    const blob = Buffer.from("redirected blob content");
    const desc = {
      mediaType: "application/octet-stream",
      digest: `sha256:${createHash("sha256").update(blob).digest("hex")}`,
      size: blob.length,
    };
    const storageAuth: (string | undefined)[] = [];
    const storage = createServer((req, res) => {
      storageAuth.push(req.headers.authorization);
      res.writeHead(200, { "content-length": blob.length }).end(blob);
    });
    await new Promise<void>((r) => storage.listen(0, "127.0.0.1", r));
    const storagePort = (storage.address() as { port: number }).port;
    const expected = `Basic ${Buffer.from("u:p").toString("base64")}`;
    const registryAuth: (string | undefined)[] = [];
    const registry = createServer((req, res) => {
      registryAuth.push(req.headers.authorization);
      if (req.headers.authorization !== expected) {
        res.writeHead(401, { "www-authenticate": 'Basic realm="test"' }).end();
        return;
      }
      res.writeHead(307, { location: `http://localhost:${storagePort}/signed?sig=abc` }).end();
    });
    await new Promise<void>((r) => registry.listen(0, "127.0.0.1", r));
    t.after(() => {
      storage.close();
      registry.close();
    });
    const host = `127.0.0.1:${(registry.address() as { port: number }).port}`;
    const reg = new Registry(host, { creds: { username: "u", password: "p" }, authFiles: [] });
    assert.deepEqual(await collect(reg.openBlob("r", desc, "test")), blob);
    assert.deepEqual(storageAuth, [undefined]);
    assert.equal(registryAuth.at(-1), expected);
  });
});

describe("registry manifest fetch", () => {
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      config: {
        mediaType: "application/vnd.oci.image.config.v1+json",
        digest: `sha256:${"0".repeat(64)}`,
        size: 2,
      },
      layers: [],
    }),
  );
  async function server(statuses: number[]) {
    let calls = 0;
    const srv = createServer((req, res) => {
      if (req.url === "/v2/") {
        res.writeHead(200).end("{}");
        return;
      }
      const status = statuses[calls++] ?? 200;
      if (status !== 200) {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(JSON.stringify({ errors: [{ code: "UNAVAILABLE", message: "try later" }] }));
        return;
      }
      res.writeHead(200, { "content-type": "application/vnd.oci.image.manifest.v1+json" }).end(manifest);
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    return {
      host: `127.0.0.1:${(srv.address() as { port: number }).port}`,
      calls: () => calls,
      close: () => new Promise((r) => srv.close(r)),
    };
  }

  it("retries 5xx and 429 answers, then succeeds", async (t) => {
    const srv = await server([503, 429]);
    t.after(srv.close);
    const got = await new Registry(srv.host, { authFiles: [] }).getManifest("r", "t", "test");
    assert.deepEqual(got.bytes, manifest);
    assert.equal(srv.calls(), 3);
  });

  it("does not retry a client error, and names the status", async (t) => {
    const srv = await server([400]);
    t.after(srv.close);
    await assert.rejects(
      new Registry(srv.host, { authFiles: [] }).getManifest("r", "t", "test"),
      /test: registry answered HTTP 400/,
    );
    assert.equal(srv.calls(), 1);
  });
});

describe("auth helpers", () => {
  it("parses bearer and basic challenges", () => {
    assert.deepEqual(
      parseChallenge('Bearer realm="https://auth.example/token",service="reg",scope="repository:a/b:pull"'),
      {
        scheme: "bearer",
        params: { realm: "https://auth.example/token", service: "reg", scope: "repository:a/b:pull" },
      },
    );
    assert.deepEqual(parseChallenge('Basic realm="x"'), { scheme: "basic", params: { realm: "x" } });
    assert.equal(parseChallenge("Negotiate abc"), undefined);
    assert.equal(parseChallenge(undefined), undefined);
  });

  it("reads credentials from docker config and containers auth.json", async (t) => {
    const dir = await tempDir(t);
    const docker = join(dir, "config.json");
    await writeFile(
      docker,
      JSON.stringify({
        auths: {
          "reg.example:5000": { auth: Buffer.from("alice:s3:cret").toString("base64") },
          "https://index.docker.io/v1/": { auth: Buffer.from("hub:pw").toString("base64") },
        },
      }),
    );
    const containers = join(dir, "auth.json");
    await writeFile(
      containers,
      JSON.stringify({ auths: { "other.example": { username: "bob", password: "pw2" } } }),
    );
    assert.deepEqual(lookupCredentials("reg.example:5000", [containers, docker]), {
      username: "alice",
      password: "s3:cret",
    });
    assert.deepEqual(lookupCredentials("docker.io", [docker]), { username: "hub", password: "pw" });
    assert.deepEqual(lookupCredentials("other.example", [containers, docker]), {
      username: "bob",
      password: "pw2",
    });
    assert.equal(lookupCredentials("none.example", [containers, docker]), undefined);
    await writeFile(docker, "{oops");
    assert.throws(() => lookupCredentials("x", [docker]), /config.json is not valid JSON/);
  });

  it("parses --creds and refuses a value without a colon", () => {
    assert.deepEqual(parseCreds("u:p:q"), { username: "u", password: "p:q" });
    assert.throws(() => parseCreds("nocolon"), /invalid --creds/);
  });
});
