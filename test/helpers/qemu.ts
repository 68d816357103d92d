/**
 * QEMU boot harness for e2e tests: software emulation (TCG) unless told otherwise, serial console to a log
 * file, markers polled from that log with bounded timeouts, BIOS (SeaBIOS) or UEFI (OVMF),
 * `-nic none` unless the test passes its own network arguments. Only one guest runs at a time
 * on this shared host: the harness holds `flock $KAIROS_CACHE/qemu.lock` while the VM lives.
 */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cacheRoot, type Started, start } from "../../src/sys/index.js";
import { takeFileLock } from "./flock.js";

export const OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd";
export const OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd";

/** Where tests cache expensive things (keyed by input hash by the callers). */
export function testCacheDir(): string {
  const base = cacheRoot();
  const dir = join(base, "test");
  mkdirSync(dir, { recursive: true });
  return dir;
}

export interface BootOptions {
  firmware: "bios" | "uefi";
  /** An ISO attached as a CD-ROM. */
  cdrom?: string;
  /** A raw image attached as a disk (an ISO "dd'ed to a USB stick"); opened read-only via snapshot. */
  disk?: string;
  kernel?: string;
  initrd?: string;
  append?: string;
  /** Directory for the serial log and the OVMF vars copy (the test's temp dir). */
  workDir: string;
  memoryMiB?: number;
  /** At most 2 on this host. */
  smp?: number;
  /** Network arguments; default `-nic none`. */
  net?: string[];
  extraArgs?: string[];
  /** Run QEMU inside this network namespace (`ip netns exec`), for tap networks a test builds. */
  netns?: string;
  /** Longest wait for the QEMU lock (default 30 min: e2e files run two at a time, and the other may hold it for its longest boot). */
  lockTimeoutMs?: number;
  /** Default tcg: tests use software emulation on this shared host; benches may pass kvm. */
  accel?: "kvm" | "tcg";
}

/** Lines that mean the boot has failed for good: stop waiting at once. */
export const DEFAULT_FAIL_MARKERS: RegExp[] = [
  /KAIROS-INITRAMFS-FAILED[^\n]*/,
  /Kernel panic - not syncing[^\n]*/,
  /KAIROS-GRUB: medium with label [^\n]*/,
  /error: file [^\n]* not found/,
];

export class BootFailure extends Error {}

export class Vm {
  readonly startedAt = Date.now();
  private exited = false;
  private exitInfo = "";
  constructor(
    readonly logPath: string,
    private readonly qemu: Started,
    private readonly releaseLock: () => void,
  ) {
    qemu.done.then(
      () => {
        this.exited = true;
        this.exitInfo = "qemu exited (status 0)";
      },
      (err: unknown) => {
        this.exited = true;
        this.exitInfo = `qemu failed: ${(err as Error).message}`;
      },
    );
  }

  /** The serial console output so far. */
  log(): string {
    try {
      return readFileSync(this.logPath, "latin1");
    } catch {
      return "";
    }
  }

  /** The last `lines` lines of the serial log, for assertion messages. */
  tail(lines = 40): string {
    return this.log().replace(/\r/g, "").split("\n").slice(-lines).join("\n");
  }

  /** Seconds since QEMU started. */
  elapsed(): number {
    return (Date.now() - this.startedAt) / 1000;
  }

  /**
   * Wait until `marker` appears in the serial log; reject at once on a fail marker or when
   * QEMU exits, and after `timeoutMs` otherwise. Rejections carry the log tail.
   */
  async waitFor(
    marker: RegExp | string,
    timeoutMs: number,
    failOn: RegExp[] = DEFAULT_FAIL_MARKERS,
  ): Promise<{ match: string; seconds: number }> {
    const deadline = Date.now() + timeoutMs;
    const re =
      typeof marker === "string" ? new RegExp(marker.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")) : marker;
    for (;;) {
      const log = this.log();
      const m = re.exec(log);
      if (m) return { match: m[0], seconds: this.elapsed() };
      for (const f of failOn) {
        const bad = f.exec(log);
        if (bad) {
          throw new BootFailure(
            `boot failed (${bad[0].trim()}) after ${this.elapsed().toFixed(0)}s waiting for ${re}; serial log ${this.logPath}, tail:\n${this.tail()}`,
          );
        }
      }
      if (this.exited) {
        throw new BootFailure(
          `${this.exitInfo} before ${re} appeared (${this.elapsed().toFixed(0)}s); serial log ${this.logPath}, tail:\n${this.tail()}`,
        );
      }
      if (Date.now() > deadline) {
        throw new BootFailure(
          `timed out after ${(timeoutMs / 1000).toFixed(0)}s waiting for ${re}; serial log ${this.logPath}, tail:\n${this.tail()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Kill QEMU's process group and release the lock. Safe to call twice. */
  async stop(): Promise<void> {
    this.qemu.kill("SIGKILL");
    await this.qemu.done.catch(() => {});
    this.releaseLock();
  }
}

/** Hold an exclusive flock on `path` until the returned function is called (or we die). */
/** The QEMU command line for `opts` (exported so a failing test can print it). */
export function qemuArgs(opts: BootOptions, logPath: string, varsPath: string): string[] {
  const args = [
    "-accel",
    opts.accel ?? "tcg",
    "-m",
    String(opts.memoryMiB ?? 2048),
    "-smp",
    String(Math.min(2, opts.smp ?? 2)),
    "-nographic",
    "-no-reboot",
    "-serial",
    `file:${logPath}`,
    "-monitor",
    "none",
    ...(opts.net ?? ["-nic", "none"]),
  ];
  if (opts.firmware === "uefi") {
    args.push(
      "-drive",
      `if=pflash,format=raw,unit=0,readonly=on,file=${OVMF_CODE}`,
      "-drive",
      `if=pflash,format=raw,unit=1,file=${varsPath}`,
    );
  }
  if (opts.cdrom) args.push("-drive", `file=${opts.cdrom},media=cdrom,readonly=on,if=ide,index=2`);
  if (opts.disk) args.push("-drive", `file=${opts.disk},format=raw,if=virtio,snapshot=on`);
  if (opts.kernel) args.push("-kernel", opts.kernel);
  if (opts.initrd) args.push("-initrd", opts.initrd);
  if (opts.append) args.push("-append", opts.append);
  args.push(...(opts.extraArgs ?? []));
  return args;
}

/** Run `fn` holding the machine-wide QEMU lock (for guests a test starts without `boot`). */
export async function withQemuLock<T>(fn: () => Promise<T>, timeoutMs = 15 * 60_000): Promise<T> {
  const release = await takeFileLock(join(testCacheDir(), "..", "qemu.lock"), timeoutMs, "QEMU lock");
  try {
    return await fn();
  } finally {
    release();
  }
}

/** Start a guest (after taking the QEMU lock). Always `await vm.stop()` in a finally/after. */
export async function boot(opts: BootOptions): Promise<Vm> {
  const lockPath = join(testCacheDir(), "..", "qemu.lock");
  const release = await takeFileLock(lockPath, opts.lockTimeoutMs ?? 30 * 60_000, "QEMU lock");
  try {
    const logPath = join(opts.workDir, `serial-${opts.firmware}-${Date.now()}.log`);
    const varsPath = join(opts.workDir, "OVMF_VARS.fd");
    if (opts.firmware === "uefi") {
      if (!existsSync(OVMF_CODE)) throw new Error(`${OVMF_CODE} missing: install the Debian package 'ovmf'`);
      copyFileSync(OVMF_VARS, varsPath);
    }
    const args = qemuArgs(opts, logPath, varsPath);
    const qemu = opts.netns
      ? start("ip", ["netns", "exec", opts.netns, "qemu-system-x86_64", ...args])
      : start("qemu-system-x86_64", args);
    qemu.stdin.end();
    qemu.stdout.resume();
    return new Vm(logPath, qemu, release);
  } catch (err) {
    release();
    throw err;
  }
}

/**
 * A guest that never prints: a multiboot kernel (a.out-kludge header, loaded at 1 MiB) whose
 * only code is `cli; hlt; jmp hlt`. QEMU's -kernel boots it like a real kernel; nothing reaches
 * the serial console. Used to make "KVM runs the firmware and then the kernel hangs" happen on
 * any machine, under TCG.
 */
export function silentKernel(): Buffer {
  const magic = 0x1badb002;
  const flags = 0x00010000; // the address fields below are valid
  const base = 0x100000;
  const b = Buffer.alloc(36);
  const words = [magic, flags, -(magic + flags) >>> 0, base, base, 0, 0, base + 32];
  words.forEach((w, i) => {
    b.writeUInt32LE(w >>> 0, i * 4);
  });
  Buffer.from([0xfa, 0xf4, 0xeb, 0xfd]).copy(b, 32);
  return b;
}
