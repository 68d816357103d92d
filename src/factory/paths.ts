import { fileURLToPath } from "node:url";
import { cacheRoot } from "../sys/cache.js";

/** The checkout's framework/ directory (files that go into the OS image), or $KAIROS_FRAMEWORK_DIR. */
export function frameworkDir(): string {
  return process.env.KAIROS_FRAMEWORK_DIR ?? fileURLToPath(new URL("../../framework/", import.meta.url));
}

/** The checkout's root directory. */
export function repoDir(): string {
  return fileURLToPath(new URL("../../", import.meta.url));
}

/** The build cache: $KAIROS_CACHE or ~/.cache/kairos-ts. */
export function cacheDir(): string {
  return cacheRoot();
}
