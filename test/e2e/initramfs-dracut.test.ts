/**
 * The seed's path booted: the image made by the seed's Dockerfile steps (framework copied,
 * units enabled, Debian's dracut with our kairos module — see test/integration/factory-seed.ts)
 * boots from a COS_LIVE ISO with its dracut initrd, through our early-boot script.
 */
import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { run } from "../../src/sys/index.js";
import { boot } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";
import { inChroot, seedPathRootfs } from "../integration/factory-seed.js";
import { MARKER_UNIT } from "./initramfs-fixture.js";

const LIVE = "console=ttyS0 root=live:CDLABEL=COS_LIVE rd.live.dir=/ rd.live.squashimg=rootfs.squashfs";

describe("dracut initrd with the kairos module boots the live ISO (QEMU TCG)", {
  timeout: 45 * 60_000,
}, () => {
  it("switches root through the early-boot script and reaches multi-user", async (t) => {
    assert.equal(process.getuid?.(), 0, "this test needs root (chroot, dracut): run scripts/test as root");
    const work = await tempDir(t, "kairos-dracut-");
    const r = await seedPathRootfs(work);
    await writeFile(join(r.root, "etc/systemd/system/kairos-test-marker.service"), MARKER_UNIT);
    await inChroot(r.root, "systemctl enable kairos-test-marker.service >/dev/null 2>&1");
    const iso = join(work, "iso");
    await mkdir(iso);
    // The kernel and the dracut initrd leave the image before it is squashed.
    await run("cp", ["-L", join(r.root, "boot/vmlinuz"), join(work, "vmlinuz")]);
    await run("cp", ["-L", join(r.root, "boot/initrd"), join(work, "initrd")]);
    await run("mksquashfs", [
      r.root,
      join(iso, "rootfs.squashfs"),
      "-comp",
      "zstd",
      "-b",
      "1M",
      "-processors",
      "2",
      "-quiet",
      "-no-progress",
    ]);
    await run("rm", ["-rf", r.root]);
    await run("xorriso", ["-as", "mkisofs", "-quiet", "-V", "COS_LIVE", "-o", join(work, "live.iso"), iso]);
    await run("rm", ["-rf", iso]);

    const vm = await boot({
      firmware: "bios",
      kernel: join(work, "vmlinuz"),
      initrd: join(work, "initrd"),
      cdrom: join(work, "live.iso"),
      append: LIVE,
      workDir: work,
    });
    try {
      const sw = await vm.waitFor("KAIROS-INITRAMFS: switching root (live)", 240_000);
      const up = await vm.waitFor(/KAIROS-TEST-BOOTED[^\r\n]*/, 240_000);
      console.log(
        `dracut initrd: switch_root at ${sw.seconds.toFixed(1)}s, multi-user at ${up.seconds.toFixed(1)}s: ${up.match}`,
      );
      assert.match(up.match, /mode=live root=overlayfs live=rootfs\.squashfs/);
    } finally {
      await vm.stop();
    }
  });
});
