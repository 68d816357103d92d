import { spawnSync } from "node:child_process";
import { createHash, type Hash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { takeFileLock } from "./flock.js";

const REPO = resolve(import.meta.dirname, "../..");

/**
 * Build a cached fixture at most once across concurrent test processes: `cached()` answers
 * from the published fixture (or undefined), `build()` makes and publishes it. The check runs
 * again under `flock DIR.lock`, so a second process waits for the first one's build and then
 * reads it instead of building the same thing beside it.
 */
export async function lockedFixture<T>(
  dir: string,
  cached: () => T | undefined,
  build: () => Promise<T>,
  timeoutMs = 60 * 60_000,
): Promise<T> {
  const hit = cached();
  if (hit !== undefined) return hit;
  const release = await takeFileLock(`${dir}.lock`, timeoutMs, "fixture lock");
  try {
    return cached() ?? (await build());
  } finally {
    release();
  }
}

/**
 * Publish a fixture built in `tmp` (a sibling of `dir`) as `dir`: its description goes to
 * fixture.json, then the directory replaces any previous one with a rename, so a reader never
 * sees half a fixture. With `prune`, older fixtures of the same kind (names starting with
 * `prune`, built from other inputs) are removed: each is hundreds of MB.
 */
export async function publishFixture<T>(tmp: string, dir: string, fixture: T, prune?: string): Promise<T> {
  await writeFile(join(tmp, "fixture.json"), JSON.stringify(fixture, null, 2));
  await rm(dir, { recursive: true, force: true });
  await rename(tmp, dir);
  if (prune) pruneFixtures(dir, prune);
  return fixture;
}

/** Remove the siblings of `dir` whose names start with `prefix` (older fixtures of its kind). */
export function pruneFixtures(dir: string, prefix: string): void {
  const parent = dirname(dir);
  for (const name of readdirSync(parent)) {
    // Lock files stay: a process may be waiting on one (lockedFixture).
    if (
      name.startsWith(prefix) &&
      name !== basename(dir) &&
      !name.includes(".tmp-") &&
      !name.endsWith(".lock")
    ) {
      rmSync(join(parent, name), { recursive: true, force: true });
    }
  }
}

/**
 * What goes into every fixture from the checkout: all sources, the framework files the image
 * gets, the scripts that build parts of it (scripts/build-agent), the launchers, the lockfile
 * (dependency versions) and the test helpers. Hashing all of it means no change anywhere in
 * src/ can pass e2e against a fixture built before it; a few files more than needed only cost a
 * rebuild.
 */
export const FIXTURE_REPO_INPUTS: readonly string[] = [
  "src",
  "framework",
  "scripts",
  "bin",
  "package.json",
  "package-lock.json",
  "test/helpers",
];

/** Debian packages whose files end up in fixtures (tools, GRUB modules, busybox, firmware). */
export const FIXTURE_PACKAGES: readonly string[] = [
  "xorriso",
  "squashfs-tools-ng",
  "squashfs-tools",
  "grub-common",
  "grub-pc-bin",
  "grub-efi-amd64-bin",
  "mtools",
  "dosfstools",
  "busybox-static",
  "cpio",
  "zstd",
];

/** Feed a file or a directory tree (sorted; path, type, exec bit, content, link target) into `h`. */
export function hashPath(h: Hash, root: string, rel: string): void {
  const p = join(root, rel);
  const st = lstatSync(p, { throwIfNoEntry: false });
  if (!st) {
    h.update(`missing ${rel}\0`);
  } else if (st.isSymbolicLink()) {
    h.update(`link ${rel}\0${readlinkSync(p)}\0`);
  } else if (st.isDirectory()) {
    h.update(`dir ${rel}\0`);
    for (const name of readdirSync(p).sort()) hashPath(h, root, `${rel}/${name}`);
  } else if (st.isFile()) {
    const body = readFileSync(p);
    h.update(`file ${rel} ${st.mode & 0o111 ? "x" : "-"} ${body.length}\0`).update(body);
  }
}

let toolCache: string | undefined;

/** Versions of node and the FIXTURE_PACKAGES as dpkg knows them (missing ones say so). */
export function fixtureToolVersions(): string {
  if (toolCache === undefined) {
    const r = spawnSync(
      "dpkg-query",
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format, not a template
      ["-W", "-f", "${Package}=${Version}\\n", ...FIXTURE_PACKAGES],
      { encoding: "utf8" },
    );
    toolCache = `node=${process.version}\n${r.stdout ?? ""}${r.stderr ?? ""}${r.error ? String(r.error) : ""}`;
  }
  return toolCache;
}

export interface FixtureKeyOptions {
  /** What the fixture is made from besides the checkout: the base image's key or tar, texts, options. */
  inputs: unknown;
  /** More repo-relative files or directories that go into it (e.g. test/e2e/iso-fixture.ts). */
  files?: readonly string[];
  /** The checkout (default: this one). */
  repo?: string;
  /** Tool versions (default fixtureToolVersions()). */
  tools?: string;
}

/** The one cache key of every cached test fixture: 16 hex digits over all it is built from. */
export function fixtureKey(opts: FixtureKeyOptions): string {
  const repo = opts.repo ?? REPO;
  const h = createHash("sha256");
  h.update(`inputs ${JSON.stringify(opts.inputs)}\0tools ${opts.tools ?? fixtureToolVersions()}\0`);
  for (const rel of [...FIXTURE_REPO_INPUTS, ...(opts.files ?? [])]) hashPath(h, repo, rel);
  return h.digest("hex").slice(0, 16);
}
