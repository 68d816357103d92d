import { readdir, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join } from "node:path";

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
  if (prune) {
    const parent = dirname(dir);
    for (const name of await readdir(parent)) {
      if (name.startsWith(prune) && name !== basename(dir) && !name.includes(".tmp-")) {
        await rm(join(parent, name), { recursive: true, force: true });
      }
    }
  }
  return fixture;
}
