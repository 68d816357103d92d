/**
 * What a headless boot's serial console says about the boot, as it streams: up, failed for
 * good, silent for too long, or stuck after the boot loader handed over to the kernel. Pure
 * logic (text and clock in, verdict out) so that every verdict is tested without a guest.
 */

export interface ConsoleRules {
  /** "The system is up" (e.g. a getty login prompt). */
  up: RegExp;
  /** Lines that mean the boot failed for good. */
  failed: RegExp[];
  /** Give up when the console has printed nothing for this long. */
  silenceMs: number;
  /** The boot loader's last line before the kernel runs (GRUB's "Loading initrd..."). */
  loaderDone: RegExp;
  /**
   * Give up when nothing at all was printed this long after `loaderDone`: whatever comes next
   * is the kernel's (or, with `quiet`, the initramfs's) output.
   */
  kernelAfterLoaderMs: number;
}

export type ConsoleVerdict =
  | { kind: "up" }
  | { kind: "failed"; line: string }
  | { kind: "silent"; ms: number }
  | { kind: "no-kernel"; ms: number };

/** Lines on the console that mean the boot failed for good. */
export const BOOT_FAILED: RegExp[] = [
  /KAIROS-INITRAMFS-FAILED[^\n]*/,
  /Kernel panic - not syncing[^\n]*/,
  /KAIROS-GRUB: [^\n]*/,
];

export const DEFAULT_CONSOLE_RULES: ConsoleRules = {
  up: /^\S+ login: /m,
  failed: BOOT_FAILED,
  // Under software emulation the longest quiet stretch of a good boot here is well under a
  // minute (SeaBIOS/OVMF before GRUB, the initrd load); two minutes leaves room for a busy host.
  silenceMs: 120_000,
  loaderDone: /Loading initrd\.\.\./,
  kernelAfterLoaderMs: 90_000,
};

export class ConsoleWatch {
  private text = "";
  private lastOutput: number;
  private loaderDoneAt: number | undefined;
  private kernelSeen = false;

  constructor(
    private readonly rules: ConsoleRules,
    private readonly startedAt: number,
  ) {
    this.lastOutput = startedAt;
  }

  /** Take console output that arrived at `now`; returns a verdict when the boot is decided. */
  feed(chunk: string, now: number): ConsoleVerdict | undefined {
    if (chunk.length === 0) return this.tick(now);
    this.lastOutput = now;
    this.text = (this.text + chunk.replace(/\r/g, "")).slice(-16384);
    for (const f of this.rules.failed) {
      const m = f.exec(this.text);
      if (m) return { kind: "failed", line: m[0].trim() };
    }
    if (this.rules.up.test(this.text)) return { kind: "up" };
    if (this.loaderDoneAt === undefined) {
      const m = this.rules.loaderDone.exec(this.text);
      if (m) {
        this.loaderDoneAt = now;
        // The kernel's first output may come in the same chunk, after the loader's line.
        this.kernelSeen = /\S/.test(this.text.slice(m.index + m[0].length));
      }
    } else if (!this.kernelSeen) {
      this.kernelSeen = /\S/.test(chunk);
    }
    return this.tick(now);
  }

  /** Check the clocks at `now` (call it every second or so while nothing arrives). */
  tick(now: number): ConsoleVerdict | undefined {
    if (this.loaderDoneAt !== undefined && !this.kernelSeen) {
      const ms = now - this.loaderDoneAt;
      if (ms >= this.rules.kernelAfterLoaderMs) return { kind: "no-kernel", ms };
    }
    const quiet = now - this.lastOutput;
    if (quiet >= this.rules.silenceMs) return { kind: "silent", ms: quiet };
    return undefined;
  }

  /** The last `lines` non-empty console lines, for error messages (terminal escapes removed). */
  tail(lines = 8): string[] {
    return this.text
      .replace(/\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Za-z0-9]/g, "")
      .split("\n")
      .map((l) => l.trimEnd())
      .filter((l) => l.length > 0)
      .slice(-lines);
  }

  /** Seconds since the guest started. */
  elapsed(now: number): number {
    return (now - this.startedAt) / 1000;
  }
}
