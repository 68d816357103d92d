import { rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const live = new Set<string>();
let hooked = false;

/** A private temporary directory, removed by the returned cleanup (or at process exit at the latest). */
export async function makeTempDir(
  prefix: string,
  parent = process.env.KAIROS_TMPDIR ?? tmpdir(),
): Promise<{
  dir: string;
  cleanup: () => Promise<void>;
}> {
  const dir = await mkdtemp(join(parent, `kairos-${prefix}-`));
  live.add(dir);
  if (!hooked) {
    hooked = true;
    process.once("exit", () => {
      for (const d of live) rmSync(d, { recursive: true, force: true });
    });
  }
  return {
    dir,
    cleanup: async () => {
      live.delete(dir);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
