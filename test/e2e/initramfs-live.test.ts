import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { boot } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";
import { baseRootfsTar, type LiveFixture, liveFixture } from "./initramfs-fixture.js";

const LIVE = "console=ttyS0 root=live:CDLABEL=COS_LIVE rd.live.dir=/ rd.live.squashimg=rootfs.squashfs";

describe("universal initramfs boots the image's own kernel (QEMU TCG)", {
  timeout: 45 * 60_000,
}, async () => {
  const tar = await baseRootfsTar();
  let fx: LiveFixture | undefined;

  it("builds an initramfs of at most 12 MB for the default base", {}, async () => {
    fx = await liveFixture(tar!);
    console.log(
      `initramfs: ${(fx.initrdBytes / 1e6).toFixed(2)} MB zstd, ${fx.modules} modules (fixture built in ${fx.buildSeconds.toFixed(1)}s, cached afterwards)`,
    );
    assert.ok(fx.initrdBytes <= 12 * 1024 * 1024, `initramfs is ${fx.initrdBytes} bytes`);
  });

  it("live ISO as a CD-ROM: overlay root, medium at /run/initramfs/live, systemd reaches multi-user", {}, async (t) => {
    const work = await tempDir(t);
    const vm = await boot({
      firmware: "bios",
      kernel: fx!.kernel,
      initrd: fx!.initrd,
      cdrom: fx!.iso,
      append: LIVE,
      workDir: work,
    });
    try {
      const sw = await vm.waitFor("KAIROS-INITRAMFS: switching root (live)", 120_000);
      const up = await vm.waitFor(/KAIROS-TEST-BOOTED[^\r\n]*/, 150_000);
      console.log(
        `switch_root at ${sw.seconds.toFixed(1)}s, multi-user at ${up.seconds.toFixed(1)}s: ${up.match}`,
      );
      assert.match(up.match, /mode=live root=overlayfs live=rootfs\.squashfs/);
    } finally {
      await vm.stop();
    }
  });

  it("live ISO attached as a disk is found by its ISO9660 volume id", {}, async (t) => {
    const work = await tempDir(t);
    const vm = await boot({
      firmware: "bios",
      kernel: fx!.kernel,
      initrd: fx!.initrd,
      disk: fx!.iso,
      append: LIVE,
      workDir: work,
    });
    try {
      const sw = await vm.waitFor("KAIROS-INITRAMFS: switching root (live)", 120_000);
      const m = /kairos-initramfs: live medium: (\S+)/.exec(vm.log());
      assert.equal(m?.[1], "/dev/vda");
      console.log(`disk-attached ISO: switch_root at ${sw.seconds.toFixed(1)}s`);
    } finally {
      await vm.stop();
    }
  });

  it("a missing medium prints KAIROS-INITRAMFS-FAILED and powers off", {}, async (t) => {
    const work = await tempDir(t);
    const vm = await boot({
      firmware: "bios",
      kernel: fx!.kernel,
      initrd: fx!.initrd,
      cdrom: fx!.iso,
      append: "console=ttyS0 root=live:CDLABEL=NOPE rd.kairos.wait=3",
      workDir: work,
    });
    try {
      const f = await vm.waitFor(/KAIROS-INITRAMFS-FAILED: [^\r\n]*/, 90_000, []);
      assert.match(f.match, /no ISO9660 medium labelled NOPE found after 3s/);
      await vm.waitFor(/reboot: Power down/, 30_000, []);
    } finally {
      await vm.stop();
    }
  });

  it("an unknown root= is refused with a marker", async (t) => {
    const work = await tempDir(t);
    const vm = await boot({
      firmware: "bios",
      kernel: fx!.kernel,
      initrd: fx!.initrd,
      append: "console=ttyS0 root=/dev/sda1",
      workDir: work,
    });
    try {
      const f = await vm.waitFor(/KAIROS-INITRAMFS-FAILED: [^\r\n]*/, 90_000, []);
      assert.match(f.match, /unsupported root=\/dev\/sda1/);
    } finally {
      await vm.stop();
    }
  });
});
