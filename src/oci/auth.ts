import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { KairosError } from "../sys/index.js";
import { DOCKER_HUB } from "./reference.js";

export interface Credentials {
  username: string;
  password: string;
}

/** Parse "user:pass" (as given to --creds). */
export function parseCreds(s: string): Credentials {
  const i = s.indexOf(":");
  if (i <= 0) throw new KairosError("invalid --creds value", "use --creds USER:PASSWORD");
  return { username: s.slice(0, i), password: s.slice(i + 1) };
}

/** The auth files we read, in order: REGISTRY_AUTH_FILE, containers auth.json, $DOCKER_CONFIG, ~/.docker. */
export function authFiles(env: NodeJS.ProcessEnv = process.env): string[] {
  const files: string[] = [];
  if (env.REGISTRY_AUTH_FILE) files.push(env.REGISTRY_AUTH_FILE);
  if (env.XDG_RUNTIME_DIR) files.push(join(env.XDG_RUNTIME_DIR, "containers", "auth.json"));
  files.push(join(env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "containers", "auth.json"));
  if (env.DOCKER_CONFIG) files.push(join(env.DOCKER_CONFIG, "config.json"));
  files.push(join(env.HOME ?? homedir(), ".docker", "config.json"));
  return files;
}

function keysFor(registry: string): string[] {
  const keys = [
    registry,
    `https://${registry}`,
    `http://${registry}`,
    `https://${registry}/v1/`,
    `${registry}/v1/`,
  ];
  if (registry === DOCKER_HUB)
    keys.push("https://index.docker.io/v1/", "index.docker.io", "registry-1.docker.io");
  return keys;
}

/**
 * Credentials for a registry from docker/containers auth files (`auths.<host>.auth` = base64 user:pass,
 * or `username`/`password`). Credential helpers (`credHelpers`, `credsStore`) are not run.
 */
export function lookupCredentials(registry: string, files: string[] = authFiles()): Credentials | undefined {
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    let doc: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
    try {
      doc = JSON.parse(text);
    } catch (e) {
      throw new KairosError(`${file} is not valid JSON: ${(e as Error).message}`, "fix or remove the file");
    }
    const auths = doc.auths ?? {};
    for (const key of keysFor(registry)) {
      const entry = auths[key];
      if (!entry) continue;
      if (entry.auth) {
        const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
        const i = decoded.indexOf(":");
        if (i > 0) return { username: decoded.slice(0, i), password: decoded.slice(i + 1) };
      }
      if (entry.username && entry.password !== undefined)
        return { username: entry.username, password: entry.password };
    }
  }
  return undefined;
}

export interface Challenge {
  scheme: "basic" | "bearer";
  params: Record<string, string>;
}

/** Parse a WWW-Authenticate header: `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme !== "basic" && scheme !== "bearer") return undefined;
  const params: Record<string, string> = {};
  const re = /([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/g;
  for (let p = re.exec(m[2]!); p; p = re.exec(m[2]!)) {
    params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, "$1") : (p[3] ?? "");
  }
  return { scheme, params };
}
