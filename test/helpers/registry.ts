import { createPrivateKey, createSign, randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http, { createServer, type Server } from "node:http";
import https from "node:https";
import { createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, start } from "../../src/sys/index.js";

/** A real Distribution registry (Debian's docker-registry) on 127.0.0.1, plain HTTP, temp storage. */
export interface TestRegistry {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT (for docker:// references) */
  host: string;
  /** Storage root (blobs under docker/registry/v2/blobs). */
  storage: string;
  /** How many token requests the token server answered (auth: "token" only). */
  tokenRequests(): number;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** none (anonymous), htpasswd (basic auth) or token (bearer tokens from a token server we run). */
  auth?: "none" | "htpasswd" | "token";
  user?: string;
  password?: string;
  /** Serve HTTPS with a self-signed certificate for 127.0.0.1 (clients need --insecure). */
  tls?: boolean;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

const b64url = (b: Buffer | string) => Buffer.from(b).toString("base64url");

/**
 * A minimal Docker token server (the protocol the registry's `auth.token` expects): checks basic
 * credentials, grants the requested repository actions in an RS256 JWT whose x5c is our
 * self-signed certificate, which the registry trusts through `rootcertbundle`.
 */
async function startTokenServer(
  dir: string,
  user: string,
  password: string,
): Promise<{ url: string; cert: string; server: Server; count: () => number }> {
  const keyPath = join(dir, "token.key");
  const certPath = join(dir, "token.crt");
  await run("openssl", [
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    keyPath,
    "-out",
    certPath,
    "-days",
    "2",
    "-subj",
    "/CN=kairos-test-token",
  ]);
  const key = createPrivateKey(await readFile(keyPath));
  const der = (await readFile(certPath, "utf8")).replace(/-----[A-Z ]+-----|\s/g, "");
  let count = 0;
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    const auth = req.headers.authorization ?? "";
    const ok = auth === `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
    if (url.pathname !== "/token" || !ok) {
      res.writeHead(401, { "content-type": "application/json" });
      res.end(JSON.stringify({ errors: [{ code: "UNAUTHORIZED", message: "bad credentials" }] }));
      return;
    }
    count++;
    const access = url.searchParams.getAll("scope").flatMap((s) => {
      const [type, name, actions] = s.split(":");
      return type && name && actions ? [{ type, name, actions: actions.split(",") }] : [];
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: "RS256", typ: "JWT", x5c: [der] };
    const claims = {
      iss: "kairos-test-issuer",
      sub: user,
      aud: url.searchParams.get("service"),
      exp: now + 600,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString("hex"),
      access,
    };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign("RSA-SHA256").update(input).sign(key);
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ token: `${input}.${b64url(sig)}`, expires_in: 600 }));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/token`, cert: certPath, server, count: () => count };
}

/** GET a URL (HTTPS without certificate checks) and return the status. */
function probe(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const mod = url.startsWith("https:") ? https : http;
    const r = mod.get(url, { rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    r.on("error", reject);
  });
}

/** Start a registry; never the packaged config (that one listens on all interfaces). */
export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), "kairos-registry-"));
  const storage = join(dir, "storage");
  const port = await freePort();
  const user = opts.user ?? "user";
  const password = opts.password ?? "pass";
  let auth = "";
  let token: Awaited<ReturnType<typeof startTokenServer>> | undefined;
  if (opts.auth === "htpasswd") {
    const { stdout } = await run("htpasswd", ["-Bbn", user, password]);
    await writeFile(join(dir, "htpasswd"), stdout);
    auth = `auth:\n  htpasswd:\n    realm: kairos-test\n    path: ${join(dir, "htpasswd")}\n`;
  } else if (opts.auth === "token") {
    token = await startTokenServer(dir, user, password);
    auth =
      "auth:\n  token:\n" +
      `    realm: ${token.url}\n    service: kairos-test-registry\n    issuer: kairos-test-issuer\n` +
      `    rootcertbundle: ${token.cert}\n`;
  }
  let tls = "";
  if (opts.tls) {
    const key = join(dir, "tls.key");
    const crt = join(dir, "tls.crt");
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      crt,
      "-days",
      "2",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ]);
    tls = `  tls:\n    certificate: ${crt}\n    key: ${key}\n`;
  }
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n" +
      `storage:\n  filesystem:\n    rootdirectory: ${storage}\n  delete:\n    enabled: true\n` +
      `http:\n  addr: 127.0.0.1:${port}\n  secret: ${randomBytes(16).toString("hex")}\n${tls}${auth}`,
  );
  const proc = start("docker-registry", ["serve", config]);
  proc.stdin.end();
  proc.stdout.resume();
  let exited = false;
  proc.done
    .catch(() => {})
    .finally(() => {
      exited = true;
    });
  const url = `${opts.tls ? "https" : "http"}://127.0.0.1:${port}`;
  const stop = async () => {
    proc.kill("SIGTERM");
    await proc.done.catch(() => {});
    if (token) await new Promise((r) => token.server.close(r));
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const status = await probe(`${url}/v2/`);
      if (status === 200 || status === 401) break;
    } catch {
      // not up yet
    }
    if (exited || Date.now() > deadline) {
      const err = await proc.done.then(
        () => new Error("docker-registry exited"),
        (e: Error) => e,
      );
      await stop();
      throw new Error(`registry did not start: ${err.message}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url, host: `127.0.0.1:${port}`, storage, tokenRequests: () => token?.count() ?? 0, stop };
}
