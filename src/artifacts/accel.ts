/**
 * Which QEMU accelerator a headless boot uses. `/dev/kvm` opening is not enough: on some hosts
 * (nested virtualisation, e.g. a host kernel offering KVM through PVM) SeaBIOS and GRUB run
 * under `-accel kvm` and then the Linux kernel hangs without a line. So `auto` boots the very
 * kernel the guest will run, with no initrd, under KVM, and counts KVM usable only when the
 * kernel gets through its whole start-up (long mode, paging, both CPUs, timers) to the point
 * where it looks for a root file system, within a few seconds. The verdict is cached per boot
 * of the host and QEMU version; anything else falls back to software emulation (TCG).
 */
import { constants } from "node:fs";
import { access, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { cacheRoot, KairosError, run, start, ToolFailedError } from "../sys/index.js";

export type AccelRequest = "auto" | "kvm" | "tcg";
export type Accel = "kvm" | "tcg";

export const ACCEL_ENV = "KAIROS_ACCEL";
const CHOICES: readonly AccelRequest[] = ["auto", "kvm", "tcg"];

/** `--accel VALUE` (or $KAIROS_ACCEL) as a request; `from` names where it came from. */
export function parseAccel(value: string, from: string): AccelRequest {
  const v = value.trim().toLowerCase();
  if ((CHOICES as readonly string[]).includes(v)) return v as AccelRequest;
  throw new KairosError(
    `${from} '${value}': not an accelerator (auto, kvm or tcg)`,
    "auto probes KVM and falls back to software emulation; kvm insists on KVM; tcg is software emulation",
  );
}

/** The flag wins over $KAIROS_ACCEL; neither means auto. */
export function requestedAccel(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): AccelRequest {
  if (flag !== undefined) return parseAccel(flag, "--accel");
  const e = env[ACCEL_ENV];
  if (e !== undefined && e !== "") return parseAccel(e, ACCEL_ENV);
  return "auto";
}

/** The QEMU arguments shared by the probe and the real boot, so the probe tests what the boot uses. */
export function machineArgs(accel: Accel, memoryMiB: number): string[] {
  return [
    "-accel",
    accel,
    "-m",
    String(memoryMiB),
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
  ];
}

export interface KvmProbeResult {
  usable: boolean;
  /** One clause saying why (for the fallback line). */
  reason: string;
  seconds: number;
  /** Where the verdict came from: a probe boot now, the cache, or the device check alone. */
  source: "probe" | "cache" | "device";
}

export interface KvmProbeOptions {
  /** A Linux kernel (bzImage) to boot: the guest's own (`/boot/kernel` of the ISO). */
  kernel: () => Promise<string>;
  /** Where the verdict is cached (default $KAIROS_CACHE/accel); false: no cache. */
  cacheDir?: string | false;
  /** How long the kernel may take to reach the root mount under KVM (default 15 s; ~1-2 s when KVM works). */
  timeoutMs?: number;
  /** Default /dev/kvm. */
  device?: string;
  /**
   * The accelerator the probe guest runs under. Always kvm, except in tests that exercise the
   * probe's logic on machines without KVM (a guest that never prints, under tcg).
   */
  probeAccel?: Accel;
  /** Default: the contents of /proc/sys/kernel/random/boot_id. */
  bootId?: string;
  signal?: AbortSignal;
}

/** What the kernel prints when it has finished starting and finds no root file system. */
const KERNEL_STARTED = /VFS: Unable to mount root fs/;

interface CachedVerdict {
  bootId: string;
  qemu: string;
  usable: boolean;
  reason: string;
  seconds: number;
}

async function qemuVersion(): Promise<string> {
  const out = (await run("qemu-system-x86_64", ["--version"])).stdout;
  return out.split("\n")[0]!.trim();
}

async function hostBootId(): Promise<string> {
  return (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim();
}

/** The last non-empty line of `text`, shortened, for a one-line reason. */
function lastLine(text: string): string {
  const l =
    text
      .replace(/\r/g, "")
      .split("\n")
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
      .at(-1) ?? "";
  return l.length > 100 ? `${l.slice(0, 100)}…` : l;
}

/**
 * Boot `kernel` with no initrd under `accel` and wait for KERNEL_STARTED. Resolves with a
 * verdict; never throws for a guest that misbehaves (that is the verdict).
 */
export async function probeBoot(
  kernel: string,
  accel: Accel,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<{ usable: boolean; reason: string; seconds: number }> {
  const t0 = Date.now();
  const args = [
    ...machineArgs(accel, 512),
    "-kernel",
    kernel,
    "-append",
    "console=ttyS0 panic=-1 loglevel=7",
  ];
  const qemu = start("qemu-system-x86_64", args, { signal, stderrTailBytes: 2048 });
  qemu.stdin.end();
  let seen = "";
  const secs = () => (Date.now() - t0) / 1000;
  try {
    return await new Promise((resolve) => {
      const timer = setTimeout(() => {
        const said = lastLine(seen);
        resolve({
          usable: false,
          reason: said
            ? `a Linux kernel under -accel ${accel} stopped after printing '${said}' (no root-mount attempt in ${(timeoutMs / 1000).toFixed(0)} s)`
            : `a Linux kernel under -accel ${accel} printed nothing on the serial console in ${(timeoutMs / 1000).toFixed(0)} s`,
          seconds: secs(),
        });
      }, timeoutMs);
      qemu.stdout.on("data", (c: Buffer) => {
        seen = (seen + c.toString("latin1")).slice(-8192);
        if (KERNEL_STARTED.test(seen)) {
          clearTimeout(timer);
          resolve({ usable: true, reason: `a Linux kernel started under -accel ${accel}`, seconds: secs() });
        }
      });
      qemu.done.then(
        () => {
          clearTimeout(timer);
          resolve({
            usable: false,
            reason: `QEMU -accel ${accel} exited before the kernel started${seen ? ` (last line '${lastLine(seen)}')` : ""}`,
            seconds: secs(),
          });
        },
        (err: unknown) => {
          clearTimeout(timer);
          const tail = err instanceof ToolFailedError ? err.stderrTail : String(err);
          resolve({
            usable: false,
            reason: `QEMU -accel ${accel} failed: ${lastLine(tail) || "no message"}`,
            seconds: secs(),
          });
        },
      );
    });
  } finally {
    qemu.kill("SIGKILL");
    await qemu.done.catch(() => {});
  }
}

/** Can KVM run this guest here? Checks the device, then the cache, then boots the probe. */
export async function probeKvm(opts: KvmProbeOptions): Promise<KvmProbeResult> {
  const device = opts.device ?? "/dev/kvm";
  try {
    await access(device, constants.R_OK | constants.W_OK);
  } catch {
    return {
      usable: false,
      reason: `${device} is missing or not read-writable`,
      seconds: 0,
      source: "device",
    };
  }
  const bootId = opts.bootId ?? (await hostBootId());
  const qemu = await qemuVersion();
  const dir = opts.cacheDir === false ? undefined : (opts.cacheDir ?? join(cacheRoot(), "accel"));
  const file = dir ? join(dir, "kvm-probe.json") : undefined;
  if (file) {
    try {
      const c = JSON.parse(await readFile(file, "utf8")) as CachedVerdict;
      if (c.bootId === bootId && c.qemu === qemu) {
        return { usable: c.usable, reason: c.reason, seconds: c.seconds, source: "cache" };
      }
    } catch {
      // no verdict for this boot yet
    }
  }
  let kernel: string;
  try {
    kernel = await opts.kernel();
  } catch (err) {
    // Says nothing about KVM either: not cached, and the boot goes on under TCG.
    const why = err instanceof Error ? err.message.split("\n")[0] : String(err);
    return { usable: false, reason: `no kernel to probe KVM with (${why})`, seconds: 0, source: "probe" };
  }
  const v = await probeBoot(kernel, opts.probeAccel ?? "kvm", opts.timeoutMs ?? 15_000, opts.signal);
  // An interrupted probe says nothing about KVM: do not remember it.
  if (file && dir && !opts.signal?.aborted) {
    await mkdir(dir, { recursive: true });
    const tmp = `${file}.tmp-${process.pid}`;
    const c: CachedVerdict = { bootId, qemu, ...v };
    await writeFile(tmp, `${JSON.stringify(c, null, 2)}\n`);
    await rename(tmp, file);
  }
  return { ...v, source: "probe" };
}

export interface AccelChoice {
  accel: Accel;
  /** One line for the user when auto did not pick KVM, or undefined. */
  note?: string;
}

/** Turn a request into an accelerator; `auto` probes (see probeKvm). */
export async function chooseAccel(request: AccelRequest, probe: KvmProbeOptions): Promise<AccelChoice> {
  if (request === "tcg") return { accel: "tcg" };
  const device = probe.device ?? "/dev/kvm";
  if (request === "kvm") {
    try {
      await access(device, constants.R_OK | constants.W_OK);
    } catch {
      throw new KairosError(
        `--accel kvm: ${device} is missing or not read-writable`,
        "load the kvm module and join the kvm group, or use --accel tcg (software emulation)",
      );
    }
    return { accel: "kvm" };
  }
  const v = await probeKvm(probe);
  if (v.usable) return { accel: "kvm" };
  const cached =
    v.source === "cache"
      ? `; probed earlier this host boot, ${join(probe.cacheDir || join(cacheRoot(), "accel"), "kvm-probe.json")}`
      : "";
  return {
    accel: "tcg",
    note: `KVM not used: ${v.reason}${cached}; booting with software emulation (TCG, slower); --accel kvm or ${ACCEL_ENV}=kvm to insist`,
  };
}
