/**
 * Installed boot vs live boot of the same image (issue #10: installed boot to multi-user
 * ≤ 1.1× the live boot), and the install vs its cp + sync floor (≤ 1.5×).
 *
 * Boots, one QEMU at a time, UEFI, same memory/smp: the lifecycle fixture's ISO as a CD with
 * no disk (a plain live boot: the installer finds no disk and the e2e refusals do not run),
 * and the installed fixture disk (a qcow2 overlay). Each is timed from QEMU start to the
 * report unit's `KAIROS-LC-UP` line (after multi-user), with the switch-root marker and the
 * early-boot script's stage stamps as phases. The install figures come from the fixture's
 * install log (kernel timestamps of the agent's lines and of the cp + sync floor the e2e
 * cloud-config runs in `after-install`).
 * Usage: node --import tsx bench/install-boot.ts [rounds=1]
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { installedDiskFixture, LOCK_WAIT_MS, overlayOf, virtioDrive } from "../test/e2e/lifecycle-fixture.js";
import { type BootOptions, boot } from "../test/helpers/qemu.js";

const rounds = Number(process.argv[2] ?? 1);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error("usage: bench/install-boot.ts [rounds=1]");

const fx = await installedDiskFixture();
const work = await mkdtemp(join(tmpdir(), "kairos-bench-install-"));

interface Times {
  switchRoot: number;
  up: number;
  stages?: string;
}

async function timeBoot(opts: Omit<BootOptions, "workDir">): Promise<Times> {
  const vm = await boot({ ...opts, lockTimeoutMs: LOCK_WAIT_MS, workDir: work });
  try {
    const sw = await vm.waitFor(/KAIROS-INITRAMFS: switching root/, 600_000);
    const up = await vm.waitFor(/KAIROS-LC-UP/, 600_000);
    const stamps = [
      ...vm.log().matchAll(/running stage (\w+) \(at ([\d.]+)s\)[\s\S]*?stage \1 done \(at ([\d.]+)s\)/g),
    ];
    const stages = stamps.map((m) => `${m[1]} ${(Number(m[3]) - Number(m[2])).toFixed(1)}s`).join(", ");
    return { switchRoot: sw.seconds, up: up.seconds, ...(stages ? { stages } : {}) };
  } finally {
    await vm.stop();
  }
}

const live: Times[] = [];
const installed: Times[] = [];
for (let i = 0; i < rounds; i++) {
  live.push(await timeBoot({ firmware: "uefi", cdrom: fx.iso }));
  const disk = await overlayOf(fx.disk, join(work, `d${i}.qcow2`));
  installed.push(await timeBoot({ firmware: "uefi", extraArgs: virtioDrive(disk, "qcow2") }));
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const l = med(live.map((t) => t.up));
const n = med(installed.map((t) => t.up));
console.log(
  `live boot (UEFI, CD):     switch_root ${med(live.map((t) => t.switchRoot)).toFixed(1)}s, multi-user ${l.toFixed(1)}s`,
);
console.log(
  `installed boot (UEFI):    switch_root ${med(installed.map((t) => t.switchRoot)).toFixed(1)}s, multi-user ${n.toFixed(1)}s (${installed[0]!.stages ?? "no stage stamps"})`,
);
console.log(`installed / live: ${(n / l).toFixed(2)}x (goal <= 1.1x)`);

const log = await readFile(fx.installLog, "latin1");
const stamp = (re: RegExp) => Number(re.exec(log)?.[1] ?? Number.NaN);
const begin = stamp(/\[\s*([\d.]+)\] kairos-agent\[\d+\]: installing to/);
const end = stamp(/\[\s*([\d.]+)\] kairos-agent\[\d+\]: Installation finished/);
const off = stamp(/\[\s*([\d.]+)\] reboot: Power down/);
const floor = /KAIROS-LC-CP-FLOOR start=([\d.]+) end=([\d.]+)/.exec(log);
// The floor's whole step (its cache drop, the copies, their removal and the syncs) is taken
// out of the install; only its cp + sync part is the floor.
const stepStart = stamp(
  /\[\s*([\d.]+)\] kairos-agent\[\d+\]: after-install\[\d+\] "[^"]*the floor for[^"]*": commands: running/,
);
const stepEnd = stamp(
  /\[\s*([\d.]+)\] kairos-agent\[\d+\]: after-install\[\d+\] "[^"]*the floor for[^"]*": done/,
);
if (floor && Number.isFinite(stepStart) && Number.isFinite(stepEnd)) {
  const cp = Number(floor[2]) - Number(floor[1]);
  const step = stepEnd - stepStart;
  const install = off - begin - step;
  console.log(
    `install (checks done -> power-off, without the floor's step, ${step.toFixed(1)}s): ${install.toFixed(1)}s (to "Installation finished" ${(end - begin - step).toFixed(1)}s); cp + sync of the three image files, cold cache: ${cp.toFixed(1)}s; ratio ${(install / cp).toFixed(2)}x (goal <= 1.5x)`,
  );
} else console.log("the fixture's install log has no cp + sync floor line");
await rm(work, { recursive: true, force: true });
