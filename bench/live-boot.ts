/**
 * Live boot to multi-user against Debian's own live initramfs (issue #4: within 1.1×).
 *
 * The same kernel and the same rootfs.squashfs (the e2e fixture ISO's, with its marker unit)
 * boot two ways, one QEMU at a time, same memory/smp/firmware:
 *  - ours: the fixture ISO (our universal initramfs, `root=live:CDLABEL=…`);
 *  - Debian: an ISO with live-boot's layout (bench/debian-live-fixture.ts): the same GRUB image,
 *    kernel and squashfs (as /live/filesystem.squashfs), Debian's live-boot initrd, `boot=live`.
 * Each is timed from QEMU start to the marker line, booted from the CD through SeaBIOS + GRUB
 * (the whole media path) and directly with `-kernel/-initrd` (the CD attached for the squashfs),
 * which leaves out firmware and GRUB. Phases come from the first time each line shows on the
 * serial console: the kernel's banner, `Run /init` (initramfs starts), systemd's `Welcome to`
 * (switch root done) and the marker.
 * Usage: node --import tsx bench/live-boot.ts [rounds=1] [iso|direct|both=both] [extra kernel args]
 *   [--accel auto|kvm|tcg (default tcg)]
 * Extra kernel arguments go on both command lines and need mode `direct` (the ISOs' GRUB menus
 * are fixed): e.g. "quiet", as Debian's live images boot, which also hides systemd's Welcome
 * line. Serial console output is expensive under TCG, so the comparison is only fair with the
 * same console verbosity on both sides.
 */
import { mkdtemp, rm, stat } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { liveCmdline } from "../src/artifacts/index.js";
import { baseRootfsTar } from "../test/e2e/initramfs-fixture.js";
import { isoFixture } from "../test/e2e/iso-fixture.js";
import { type BootOptions, boot, DEFAULT_FAIL_MARKERS } from "../test/helpers/qemu.js";
import { debianLiveCmdline, debianLiveIso } from "./debian-live-fixture.js";
import { accelFlag, benchAccel } from "./lib.js";

const { request, rest } = accelFlag(process.argv.slice(2));
const rounds = Number(rest[0] ?? 1);
const mode = rest[1] ?? "both";
const extra = rest[2] ?? "";
if (
  !Number.isInteger(rounds) ||
  rounds < 1 ||
  !["iso", "direct", "both"].includes(mode) ||
  (extra !== "" && mode !== "direct")
)
  throw new Error("usage: bench/live-boot.ts [rounds=1] [iso|direct|both] [extra kernel args: direct only]");

/** Phase lines, in boot order; the time of each is when it first shows on the serial console. */
const PHASES = {
  kernel: /Linux version \d/,
  initramfs: /Run \/init as init process/,
  systemd: /Welcome to (?!GRUB)/,
  marker: /KAIROS-ISO-BOOTED/,
} as const;
type Phase = keyof typeof PHASES;
type Times = Record<Phase, number>;

/** live-boot's failure lines: it drops to a busybox shell instead of panicking. */
const FAIL = [
  ...DEFAULT_FAIL_MARKERS,
  /Unable to find a medium containing a live file system[^\n]*/,
  /\(initramfs\) /,
];

const tar = await baseRootfsTar();
const fx = await isoFixture(tar);
const deb = await debianLiveIso(fx.iso, tar);
const work = await mkdtemp(join(tmpdir(), "kairos-bench-live-"));
// Both ISOs boot the same kernel (deb.kernel is the fixture ISO's), so one probe serves both.
const accel = await benchAccel(request, async () => deb.kernel);

async function timeBoot(name: string, opts: Omit<BootOptions, "workDir">): Promise<Times> {
  const vm = await boot({ ...opts, workDir: work, accel });
  const seen: Partial<Times> = {};
  try {
    const deadline = Date.now() + 600_000;
    for (;;) {
      const log = vm.log();
      const now = vm.elapsed();
      for (const [p, re] of Object.entries(PHASES) as [Phase, RegExp][])
        if (seen[p] === undefined && re.test(log)) seen[p] = now;
      if (seen.marker !== undefined) break;
      const bad = FAIL.map((f) => f.exec(log)).find(Boolean);
      if (bad || Date.now() > deadline)
        throw new Error(
          `${name}: ${bad ? `boot failed (${bad[0]})` : "timed out"}; serial log ${vm.logPath}:\n${vm.tail()}`,
        );
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    await vm.stop();
  }
  // A phase whose line did not show (e.g. printk silenced) reads as NaN, not as a wrong number.
  return { kernel: NaN, initramfs: NaN, systemd: NaN, ...seen } as Times;
}

const f = (n: number) => (Number.isNaN(n) ? "  –  " : n.toFixed(1).padStart(5));
function line(name: string, t: Times): string {
  return `${name.padEnd(22)} kernel ${f(t.kernel)}  /init ${f(t.initramfs)}  systemd ${f(t.systemd)}  multi-user ${f(t.marker)} s  (initramfs phase ${f(t.systemd - t.initramfs)} s, systemd phase ${f(t.marker - t.systemd)} s)`;
}

interface Pair {
  label: string;
  ours: Omit<BootOptions, "workDir">;
  debian: Omit<BootOptions, "workDir">;
}
const pairs: Pair[] = [];
if (mode !== "direct")
  pairs.push({
    label: "CD via SeaBIOS + GRUB",
    ours: { firmware: "bios", cdrom: fx.iso },
    debian: { firmware: "bios", cdrom: deb.iso },
  });
if (mode !== "iso")
  pairs.push({
    label: "direct -kernel/-initrd",
    ours: {
      firmware: "bios",
      cdrom: fx.iso,
      kernel: deb.kernel,
      initrd: deb.ourInitrd,
      append: [liveCmdline(), extra].filter(Boolean).join(" "),
    },
    debian: {
      firmware: "bios",
      cdrom: deb.iso,
      kernel: deb.kernel,
      initrd: deb.initrd.initrd,
      append: [debianLiveCmdline(), extra].filter(Boolean).join(" "),
    },
  });

console.log(
  `kernel ${deb.initrd.kernelVersion}; our initrd ${((await stat(deb.ourInitrd)).size / 2 ** 20).toFixed(1)} MiB, ` +
    `Debian live-boot initrd ${(deb.initrd.initrdBytes / 2 ** 20).toFixed(1)} MiB (${deb.initrd.config.join(" ")}; ${deb.initrd.packages.join(", ")})`,
);
console.log(
  `cmdlines: ours "${[liveCmdline(), extra].filter(Boolean).join(" ")}", Debian "${[debianLiveCmdline(), extra].filter(Boolean).join(" ")}"`,
);
const results = new Map<string, { ours: Times[]; debian: Times[] }>(
  pairs.map((p) => [p.label, { ours: [], debian: [] }]),
);
try {
  for (let i = 0; i < rounds; i++) {
    for (const p of pairs) {
      const r = results.get(p.label)!;
      // Alternate which goes first, so a drift in host load does not favour one side.
      const order = i % 2 === 0 ? (["ours", "debian"] as const) : (["debian", "ours"] as const);
      for (const who of order) {
        const before = loadavg()[0]!;
        const t = await timeBoot(`${who} ${p.label}`, p[who]);
        r[who].push(t);
        console.log(
          `round ${i + 1} ${line(`${who === "ours" ? "ours" : "Debian"} ${p.label === "direct -kernel/-initrd" ? "direct" : "CD"}`, t)}  load ${before.toFixed(2)}→${loadavg()[0]!.toFixed(2)}`,
        );
      }
    }
  }
  for (const p of pairs) {
    const r = results.get(p.label)!;
    const best = (ts: Times[]) => ts.reduce((a, b) => (b.marker < a.marker ? b : a));
    const o = best(r.ours);
    const d = best(r.debian);
    const ratio = o.marker / d.marker;
    console.log(`\n${p.label}, best of ${rounds}:`);
    console.log(line("  ours", o));
    console.log(line("  Debian live-boot", d));
    console.log(
      `  live boot to multi-user: ours ${o.marker.toFixed(1)} s vs Debian's live-boot ${d.marker.toFixed(1)} s → ${ratio.toFixed(2)}× (goal ≤ 1.1×: ${ratio <= 1.1 ? "met" : "NOT met"}); to switch root (systemd's Welcome): ${f(o.systemd)} s vs ${f(d.systemd)} s`,
    );
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
