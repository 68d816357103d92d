import { spawn } from "node:child_process";
import { constants, copyFileSync } from "node:fs";
import { access, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { cacheRoot, KairosError, start } from "../sys/index.js";

export interface HeadlessBootOptions {
  iso: string;
  firmware?: "bios" | "uefi";
  /** Attach as a disk (USB stick) instead of a CD-ROM. */
  asDisk?: boolean;
  memoryMiB?: number;
  /** Give up after this long (default 10 min: software emulation is slow). */
  timeoutMs?: number;
  /** Where the guest's serial console is copied to (e.g. process.stderr). */
  console?: Writable;
  /** What "the system is up" looks like on the serial console (default: a getty login prompt). */
  upMarker?: RegExp;
  signal?: AbortSignal;
  /** Called when another kairos-ts QEMU guest holds the lock and we wait for it. */
  onWait?: () => void;
}

/**
 * Hold `flock LOCK` while the guest runs, so that guests started by kairos-ts (this command,
 * the e2e tests) run one at a time on a shared host. Released when the returned function is
 * called or when this process exits (the pipe to `cat` closes).
 */
async function takeQemuLock(lock: string, onWait?: () => void): Promise<() => void> {
  await mkdir(dirname(lock), { recursive: true });
  const child = spawn("flock", ["--exclusive", lock, "sh", "-c", "echo locked; exec cat"], {
    stdio: ["pipe", "pipe", "ignore"],
  });
  const waiting = setTimeout(() => onWait?.(), 1000);
  try {
    await new Promise<void>((resolve, reject) => {
      child.stdout.once("data", () => resolve());
      child.once("error", reject);
      child.once("exit", (code) => reject(new KairosError(`could not lock ${lock} (flock exit ${code})`)));
    });
  } finally {
    clearTimeout(waiting);
  }
  child.removeAllListeners("exit");
  return () => {
    if (!child.stdin.destroyed) child.stdin.end();
  };
}

/** Lines on the console that mean the boot failed for good. */
const FAILED = [/KAIROS-INITRAMFS-FAILED[^\n]*/, /Kernel panic - not syncing[^\n]*/, /KAIROS-GRUB: [^\n]*/];

async function hasKvm(): Promise<boolean> {
  try {
    await access("/dev/kvm", constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Boot an ISO headless in QEMU with no network (`-nic none`), copying the serial console to
 * `console` until the system is up (a login prompt), then power the guest off. Uses KVM when
 * /dev/kvm is usable, software emulation otherwise.
 */
export async function bootIsoHeadless(
  opts: HeadlessBootOptions,
): Promise<{ seconds: number; accel: string }> {
  const firmware = opts.firmware ?? "bios";
  const work = await mkdtemp(join(tmpdir(), "kairos-boot-"));
  const kvm = await hasKvm();
  const args = [
    "-m",
    String(opts.memoryMiB ?? 2048),
    "-smp",
    "2",
    "-display",
    "none",
    "-serial",
    "stdio",
    "-monitor",
    "none",
    "-no-reboot",
    "-nic",
    "none",
    "-accel",
    kvm ? "kvm" : "tcg",
  ];
  if (firmware === "uefi") {
    const code = "/usr/share/OVMF/OVMF_CODE_4M.fd";
    try {
      await access(code);
    } catch {
      throw new KairosError(`${code} not found`, "install the Debian package 'ovmf'");
    }
    const vars = join(work, "OVMF_VARS.fd");
    copyFileSync("/usr/share/OVMF/OVMF_VARS_4M.fd", vars);
    args.push("-drive", `if=pflash,format=raw,unit=0,readonly=on,file=${code}`);
    args.push("-drive", `if=pflash,format=raw,unit=1,file=${vars}`);
  }
  args.push(
    "-drive",
    opts.asDisk
      ? `file=${opts.iso},format=raw,if=virtio,snapshot=on`
      : `file=${opts.iso},media=cdrom,readonly=on,if=ide,index=2`,
  );
  const cache = cacheRoot();
  const release = await takeQemuLock(join(cache, "qemu.lock"), opts.onWait);
  const t0 = Date.now();
  const qemu = start("qemu-system-x86_64", args, { signal: opts.signal });
  qemu.stdin.end();
  const up = opts.upMarker ?? /^\S+ login: /m;
  let seen = "";
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(
            new KairosError(
              `the guest was not up after ${((opts.timeoutMs ?? 600_000) / 1000).toFixed(0)} s`,
            ),
          ),
        opts.timeoutMs ?? 600_000,
      );
      qemu.stdout.on("data", (c: Buffer) => {
        opts.console?.write(c);
        seen = (seen + c.toString("latin1").replace(/\r/g, "")).slice(-8192);
        for (const f of FAILED) {
          const m = f.exec(seen);
          if (m) {
            clearTimeout(timer);
            reject(new KairosError(`the guest failed to boot: ${m[0].trim()}`));
            return;
          }
        }
        if (up.test(seen)) {
          clearTimeout(timer);
          resolve();
        }
      });
      qemu.done.then(
        () => {
          clearTimeout(timer);
          reject(new KairosError("QEMU exited before the system was up"));
        },
        (err: unknown) => {
          clearTimeout(timer);
          reject(err);
        },
      );
    });
    return { seconds: (Date.now() - t0) / 1000, accel: kvm ? "kvm" : "tcg" };
  } finally {
    qemu.kill("SIGKILL");
    await qemu.done.catch(() => {});
    release();
    await rm(work, { recursive: true, force: true });
  }
}
