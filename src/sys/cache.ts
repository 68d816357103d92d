import { homedir } from "node:os";
import { join } from "node:path";

/** Where kairos-ts caches what is expensive to make (base images, agent builds, test fixtures): $KAIROS_CACHE or ~/.cache/kairos-ts. */
export function cacheRoot(env: NodeJS.ProcessEnv = process.env): string {
  return env.KAIROS_CACHE ?? join(env.HOME ?? homedir(), ".cache", "kairos-ts");
}
