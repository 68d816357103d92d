import { mkdtemp, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { run } from "../../src/sys/index.js";

/** A real ext4 filesystem on a loop device, mounted at `dir`; unmounted and detached when the test ends. */
export interface LoopFs {
  dir: string;
  device: string;
  image: string;
  /** Unmount and mount again (drops nothing that was fsynced; checks the on-disk state is what we read). */
  remount(): Promise<void>;
}

/** Create, format (`mkfs.ext4 -L label`) and mount a `sizeMiB` loop filesystem. Needs root. */
export async function loopExt4(t: TestContext, sizeMiB: number, label = "KTS_TEST"): Promise<LoopFs> {
  const base = await mkdtemp(join(tmpdir(), "kairos-loopfs-"));
  const image = join(base, "fs.img");
  const dir = join(base, "mnt");
  await writeFile(image, "");
  await truncate(image, sizeMiB * 1024 * 1024);
  await run("mkfs.ext4", ["-q", "-F", "-L", label, "-m", "0", image]);
  const device = (await run("losetup", ["-f", "--show", image])).stdout.trim();
  let mounted = false;
  t.after(async () => {
    if (mounted) await run("umount", [dir]).catch(() => run("umount", ["-l", dir]));
    await run("losetup", ["-d", device]).catch(() => {});
    await rm(base, { recursive: true, force: true });
  });
  await run("mkdir", ["-p", dir]);
  await run("mount", [device, dir]);
  mounted = true;
  return {
    dir,
    device,
    image,
    remount: async () => {
      await run("umount", [dir]);
      mounted = false;
      await run("e2fsck", ["-fn", device]);
      await run("mount", [device, dir]);
      mounted = true;
    },
  };
}
