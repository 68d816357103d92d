#!/usr/bin/env node
// Bundles a CLI entry point with esbuild into build/bundle/NAME.mjs, so `bin/kairos` starts in
// a fraction of the time a TypeScript loader needs. bin/kairos calls this when any source file
// is newer than the bundle. The bundle sits two directories below the checkout, like the
// sources, so paths computed from import.meta.url (framework/, the repo root) stay right.
import { renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const name = process.argv[2] ?? "kairos";
const out = join(root, "build", "bundle", `${name}.mjs`);
// Built in a private directory, then renamed into place (map first): concurrent runs never see
// half a bundle, and the map keeps the name the bundle's sourceMappingURL comment gives it.
const tmpDir = join(root, "build", "bundle", `.tmp-${process.pid}`);
const tmp = join(tmpDir, `${name}.mjs`);
try {
  await build({
    entryPoints: [join(root, "src", "cli", `${name}.ts`)],
    outfile: tmp,
    bundle: true,
    platform: "node",
    target: "node20",
    format: "esm",
    sourcemap: "linked",
    logLevel: "error",
    banner: {
      js: 'import { createRequire as __kairosRequire } from "node:module"; const require = __kairosRequire(import.meta.url);',
    },
  });
  renameSync(`${tmp}.map`, `${out}.map`);
  renameSync(tmp, out);
} finally {
  rmSync(tmpDir, { recursive: true, force: true });
}
