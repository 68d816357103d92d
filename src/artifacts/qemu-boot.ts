import { spawn } from "node:child_process";
import { copyFileSync } from "node:fs";
import { access, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { cacheRoot, KairosError, run, start } from "../sys/index.js";
import {
  type Accel,
  type AccelRequest,
  chooseAccel,
  type KvmProbeOptions,
  machineArgs,
  requestedAccel,
} from "./accel.js";
import {
  type ConsoleRules,
  type ConsoleVerdict,
  ConsoleWatch,
  DEFAULT_CONSOLE_RULES,
} from "./console-watch.js";
import { ISO_KERNEL } from "./grub.js";

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
  /** auto (default: $KAIROS_ACCEL, else auto), kvm or tcg. */
  accel?: AccelRequest;
  /** Receives the one line saying why auto did not pick KVM. */
  onNote?: (line: string) => void;
  /** KVM probe settings (cache dir, bound; tests also set the probe guest's accelerator). */
  probe?: Partial<Omit<KvmProbeOptions, "kernel">> & { kernel?: KvmProbeOptions["kernel"] };
  /** Fail-fast bounds (silence, kernel after GRUB); default DEFAULT_CONSOLE_RULES. */
  watch?: Partial<ConsoleRules>;
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

/** The ISO's kernel, copied out (no mount, no loop device) for the KVM probe. */
async function isoKernel(iso: string, work: string): Promise<string> {
  const dest = join(work, "probe-kernel");
  await run("xorriso", ["-osirrox", "on", "-indev", iso, "-extract", ISO_KERNEL, dest]);
  return dest;
}

function failure(watch: ConsoleWatch, v: ConsoleVerdict, accel: Accel, now: number): KairosError {
  const tail = watch.tail();
  const shown = tail.length
    ? `; last console lines:\n${tail.map((l) => `  | ${l}`).join("\n")}`
    : "; the console printed nothing";
  const other =
    accel === "kvm" ? "--accel tcg (software emulation)" : "--accel kvm if this host's KVM runs guests";
  switch (v.kind) {
    case "failed":
      return new KairosError(`the guest failed to boot: ${v.line}${shown}`);
    case "silent":
      return new KairosError(
        `the guest printed nothing for ${(v.ms / 1000).toFixed(0)} s (${watch.elapsed(now).toFixed(0)} s after start, -accel ${accel})${shown}`,
        `try ${other}; a boot that hangs before GRUB's menu is the firmware or the medium, after "Loading initrd..." the kernel`,
      );
    case "no-kernel":
      return new KairosError(
        `the kernel printed nothing ${(v.ms / 1000).toFixed(0)} s after GRUB loaded it (-accel ${accel})${shown}`,
        accel === "kvm"
          ? "this host's KVM runs the boot loader but not the kernel (nested virtualisation?): use --accel tcg"
          : "check --cmdline (console=ttyS0 must stay) and the image's kernel",
      );
    default:
      return new KairosError("the guest is up");
  }
}

/**
 * Boot an ISO headless in QEMU with no network (`-nic none`), copying the serial console to
 * `console` until the system is up (a login prompt), then power the guest off. The accelerator
 * is chosen by `accel` (default $KAIROS_ACCEL, else auto: KVM only if a probe shows it runs
 * this ISO's kernel). A guest that goes quiet fails fast with its last console lines.
 */
export async function bootIsoHeadless(
  opts: HeadlessBootOptions,
): Promise<{ seconds: number; accel: Accel; note?: string }> {
  const firmware = opts.firmware ?? "bios";
  const work = await mkdtemp(join(tmpdir(), "kairos-boot-"));
  const cache = cacheRoot();
  let release: (() => void) | undefined;
  try {
    const args: string[] = [];
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
    // The probe runs under the lock too: a busy host must not make KVM look broken.
    release = await takeQemuLock(join(cache, "qemu.lock"), opts.onWait);
    const choice = await chooseAccel(opts.accel ?? requestedAccel(undefined), {
      kernel: () => isoKernel(opts.iso, work),
      signal: opts.signal,
      ...opts.probe,
    });
    if (choice.note) opts.onNote?.(choice.note);
    const accel = choice.accel;
    const t0 = Date.now();
    const qemu = start("qemu-system-x86_64", [...machineArgs(accel, opts.memoryMiB ?? 2048), ...args], {
      signal: opts.signal,
    });
    qemu.stdin.end();
    const watch = new ConsoleWatch(
      {
        ...DEFAULT_CONSOLE_RULES,
        ...(opts.upMarker ? { up: opts.upMarker } : {}),
        ...opts.watch,
      },
      t0,
    );
    const timeoutMs = opts.timeoutMs ?? 600_000;
    try {
      await new Promise<void>((resolve, reject) => {
        const settle = (v: ConsoleVerdict | undefined) => {
          if (!v) return;
          clearTimeout(timer);
          clearInterval(ticker);
          if (v.kind === "up") resolve();
          else reject(failure(watch, v, accel, Date.now()));
        };
        const timer = setTimeout(() => {
          clearInterval(ticker);
          const tail = watch.tail();
          reject(
            new KairosError(
              `the guest was not up after ${(timeoutMs / 1000).toFixed(0)} s (-accel ${accel})${tail.length ? `; last console lines:\n${tail.map((l) => `  | ${l}`).join("\n")}` : ""}`,
              accel === "kvm" ? "try --accel tcg" : undefined,
            ),
          );
        }, timeoutMs);
        const ticker = setInterval(() => settle(watch.tick(Date.now())), 1000);
        qemu.stdout.on("data", (c: Buffer) => {
          opts.console?.write(c);
          settle(watch.feed(c.toString("latin1"), Date.now()));
        });
        qemu.done.then(
          () => {
            clearTimeout(timer);
            clearInterval(ticker);
            reject(new KairosError("QEMU exited before the system was up"));
          },
          (err: unknown) => {
            clearTimeout(timer);
            clearInterval(ticker);
            reject(err);
          },
        );
      });
      return { seconds: (Date.now() - t0) / 1000, accel, note: choice.note };
    } finally {
      qemu.kill("SIGKILL");
      await qemu.done.catch(() => {});
    }
  } finally {
    release?.();
    await rm(work, { recursive: true, force: true });
  }
}
