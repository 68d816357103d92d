import { closeSync, openSync, readSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KairosError } from "../../sys/index.js";

/**
 * Between two stages run by one agent process (`run-stage rootfs initramfs --pause DIR`):
 * tell the caller that `stage` is done by a line `STAGE done` on the FIFO `DIR/up`, then block
 * until the caller answers with a line on the FIFO `DIR/down`. The installed initramfs mounts
 * the layout that `stages.rootfs` wrote meanwhile, so `stages.initramfs` sees it without a
 * second start of the agent (each start costs seconds under emulation).
 *
 * The caller keeps both FIFOs open for reading and writing, so neither open blocks here; the
 * synchronous calls are deliberate: nothing else runs in the agent while it waits.
 */
export function pauseAfterStage(dir: string, stage: string): void {
  const up = join(dir, "up");
  const down = join(dir, "down");
  try {
    writeFileSync(up, `${stage} done\n`);
  } catch (err) {
    throw new KairosError(
      `cannot write to ${up}: ${(err as Error).message}`,
      "--pause needs the FIFOs DIR/up and DIR/down",
    );
  }
  let fd: number;
  try {
    fd = openSync(down, "r");
  } catch (err) {
    throw new KairosError(
      `cannot open ${down}: ${(err as Error).message}`,
      "--pause needs the FIFOs DIR/up and DIR/down",
    );
  }
  try {
    const byte = Buffer.alloc(1);
    for (;;) {
      const n = readSync(fd, byte, 0, 1, null);
      if (n === 0)
        throw new KairosError(`${down} closed before the caller answered: stages after ${stage} not run`);
      if (byte[0] === 0x0a) return;
    }
  } finally {
    closeSync(fd);
  }
}
