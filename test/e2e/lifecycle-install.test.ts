/**
 * Install and first boot (issue #10 items 1-3) under QEMU TCG: the ISO installs itself
 * (install.auto) onto a virtio disk under UEFI and powers off, refusing the live medium and a
 * too-small disk first; the installed disk boots (UEFI twice, BIOS once) to `active_boot` with
 * the cloud-config user, a read-only /, the initramfs stage's file, and files under /usr/local
 * and /root (persistent) and on an install.bind_mounts path surviving a reboot, while one
 * under /etc and one on an install.ephemeral_mounts path (writable although / is not) do not.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { boot } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";
import { installedDiskFixture, LOCK_WAIT_MS, overlayOf, virtioDrive } from "./lifecycle-fixture.js";

describe("kairos-agent install from the ISO, then the installed system boots (QEMU TCG)", {
  timeout: 150 * 60_000,
}, () => {
  it("auto-installs under UEFI and powers off; refuses the live medium and a too-small disk first", async () => {
    const t0 = Date.now();
    const fx = await installedDiskFixture();
    console.log(
      `installed disk ready in ${((Date.now() - t0) / 1000).toFixed(0)}s (install boot ${fx.installSeconds.toFixed(0)}s)`,
    );
    const log = readFileSync(fx.installLog, "latin1");
    const live = /KAIROS-LC-REFUSE-LIVE[^\r\n]*/.exec(log)?.[0] ?? "";
    assert.match(live, /rc=1 .*\/dev\/sr0 holds the live medium/, live);
    const small = /KAIROS-LC-REFUSE-SMALL[^\r\n]*/.exec(log)?.[0] ?? "";
    assert.match(small, /rc=1 .*\/dev\/vdb is too small: 4096 MiB, the layout needs at least \d+ MiB/, small);
    assert.match(log, /installing to \/dev\/vda/);
    assert.match(log, /KAIROS-LC-AFTER-INSTALL-STAGE/);
    assert.match(log, /Running after-install hook/);
  });

  it("UEFI: active_boot, user, read-only /, initramfs stage; /usr/local and /root survive a reboot, /etc does not", async (t) => {
    const fx = await installedDiskFixture();
    const work = await tempDir(t);
    const disk = await overlayOf(fx.disk, join(work, "disk.qcow2"));
    const first = await boot({
      firmware: "uefi",
      lockTimeoutMs: LOCK_WAIT_MS,
      workDir: work,
      extraArgs: virtioDrive(disk, "qcow2"),
    });
    try {
      const sw = await first.waitFor("KAIROS-INITRAMFS: switching root (installed)", 600_000);
      const up = await first.waitFor(/KAIROS-LC-UP[^\r\n]*/, 600_000);
      console.log(
        `uefi first boot: switch_root ${sw.seconds.toFixed(1)}s, multi-user ${up.seconds.toFixed(1)}s: ${up.match}`,
      );
      assert.match(first.log(), /root=LABEL=COS_ACTIVE cos-img\/filename=\/cOS\/active\.img/);
      // install.grub_options.extra_cmdline went to COS_OEM:/grubenv and GRUB appended it.
      assert.match(first.log(), /Command line: [^\r\n]*\blc\.grubopt=install\b/);
      assert.match(up.match, /boot=active_boot\b/);
      assert.match(up.match, /user=1000\b/, "the cloud-config's user exists");
      assert.match(up.match, /root=ro\b/, "/ is read-only");
      assert.match(up.match, /initramfs=initramfs_stage_ran\b/, "stages.initramfs ran before switch_root");
      assert.match(up.match, /local=none persist=none etc=none bind=none eph=none/);
      assert.match(up.match, /oem=[^ ]*90_custom\.yaml/, "the cloud-config is on COS_OEM");
      assert.match(up.match, /state=true\b/, "state.mounted");
      await first.waitFor("KAIROS-LC-WROTE", 120_000);
    } finally {
      await first.stop();
    }
    const second = await boot({
      firmware: "uefi",
      lockTimeoutMs: LOCK_WAIT_MS,
      workDir: work,
      extraArgs: virtioDrive(disk, "qcow2"),
    });
    try {
      const up = await second.waitFor(/KAIROS-LC-UP[^\r\n]*/, 600_000);
      console.log(`uefi second boot: multi-user ${up.seconds.toFixed(1)}s: ${up.match}`);
      assert.match(up.match, /boot=active_boot\b/);
      assert.match(
        up.match,
        /local=1 persist=1 etc=none bind=1 eph=none/,
        "/usr/local, /root and install.bind_mounts persist; /etc and install.ephemeral_mounts do not",
      );
    } finally {
      await second.stop();
    }
  });

  it("BIOS: the same disk boots to active_boot through GRUB's BIOS core image", async (t) => {
    const fx = await installedDiskFixture();
    const work = await tempDir(t);
    const vm = await boot({
      firmware: "bios",
      workDir: work,
      extraArgs: virtioDrive(fx.disk, "raw", ",snapshot=on"),
    });
    try {
      const up = await vm.waitFor(/KAIROS-LC-UP[^\r\n]*/, 600_000);
      console.log(`bios first boot: multi-user ${up.seconds.toFixed(1)}s: ${up.match}`);
      assert.match(up.match, /boot=active_boot\b/);
      assert.match(up.match, /user=1000\b/);
    } finally {
      await vm.stop();
    }
  });
});
