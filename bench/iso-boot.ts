/**
 * Live-boot time of our ISO under QEMU (TCG) against the same kernel, initramfs and
 * rootfs.squashfs booted directly (`-kernel/-initrd`, the ISO attached as a CD-ROM for the
 * squashfs), i.e. what firmware + GRUB loading from the medium cost. The comparison with
 * Debian's own live initramfs (issue #4's goal) is bench/live-boot.ts.
 * Both boots in one run, one QEMU at a time. Uses the e2e fixture ISO (built if missing).
 * Usage: node --import tsx bench/iso-boot.ts [rounds=1] [--accel auto|kvm|tcg (default tcg)]
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { liveCmdline } from "../src/artifacts/index.js";
import { baseRootfsTar } from "../test/e2e/initramfs-fixture.js";
import { isoFixture } from "../test/e2e/iso-fixture.js";
import { extractFromIso } from "../test/helpers/iso.js";
import { type BootOptions, boot } from "../test/helpers/qemu.js";
import { accelFlag, benchAccel } from "./lib.js";

const { request, rest } = accelFlag(process.argv.slice(2));
const rounds = Number(rest[0] ?? 1);
const tar = await baseRootfsTar();
if (!tar) throw new Error("no default base rootfs (run `kairos base`)");
const fx = await isoFixture(tar);
const work = await mkdtemp(join(tmpdir(), "kairos-bench-boot-"));
let accel: "kvm" | "tcg" = "tcg";

async function timeBoot(opts: Omit<BootOptions, "workDir">): Promise<number> {
  const vm = await boot({ ...opts, workDir: work, accel });
  try {
    return (await vm.waitFor(/KAIROS-ISO-BOOTED/, 600_000)).seconds;
  } finally {
    await vm.stop();
  }
}

try {
  // The kernel and initrd exactly as on the ISO.
  await extractFromIso(fx.iso, "/boot/kernel", join(work, "kernel"));
  await extractFromIso(fx.iso, "/boot/initrd", join(work, "initrd"));
  accel = await benchAccel(request, async () => join(work, "kernel"));
  const viaGrub: number[] = [];
  const direct: number[] = [];
  for (let i = 0; i < rounds; i++) {
    viaGrub.push(await timeBoot({ firmware: "bios", cdrom: fx.iso }));
    direct.push(
      await timeBoot({
        firmware: "bios",
        cdrom: fx.iso,
        kernel: join(work, "kernel"),
        initrd: join(work, "initrd"),
        append: liveCmdline(),
      }),
    );
    console.log(
      `round ${i + 1}: ISO via SeaBIOS+GRUB ${viaGrub[i]!.toFixed(1)} s, direct -kernel ${direct[i]!.toFixed(1)} s`,
    );
  }
  const a = Math.min(...viaGrub);
  const b = Math.min(...direct);
  console.log(
    `live boot to multi-user: ISO ${a.toFixed(1)} s vs direct kernel boot of the same files ${b.toFixed(1)} s → ${(a / b).toFixed(2)}×`,
  );
} finally {
  await rm(work, { recursive: true, force: true });
}
