/**
 * Installed-system boot through the universal initramfs, on disks built as files (no installer):
 * COS_STATE (ext4) holding /cOS/active.img (the squashfs), COS_PERSISTENT (ext4) and COS_OEM
 * (FAT, so the FAT label reader is exercised). root=LABEL=COS_STATE cos-img/filename=/cOS/active.img.
 */
import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { run } from "../../src/sys/index.js";
import { extractFromIso } from "../helpers/iso.js";
import { boot } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";
import { baseRootfsTar, liveFixture } from "./initramfs-fixture.js";

describe("universal initramfs: installed system (QEMU TCG)", { timeout: 45 * 60_000 }, async () => {
  const tar = await baseRootfsTar();
  it("mounts active.img from COS_STATE, COS_OEM at /oem, COS_PERSISTENT binds; missing image fails fast", {}, async (t) => {
    const fx = await liveFixture(tar!);
    const work = await tempDir(t);
    const state = join(work, "state");
    await mkdir(join(state, "cOS"), { recursive: true });
    await extractFromIso(fx.iso, "/rootfs.squashfs", join(state, "cOS", "active.img"));
    const img = (name: string) => join(work, name);
    await run("truncate", ["-s", "400M", img("state.img")]);
    await run("mkfs.ext4", ["-q", "-L", "COS_STATE", "-d", state, img("state.img")]);
    await run("rm", ["-rf", state]);
    await run("truncate", ["-s", "64M", img("persistent.img")]);
    await run("mkfs.ext4", ["-q", "-L", "COS_PERSISTENT", img("persistent.img")]);
    await run("mkfs.vfat", ["-n", "COS_OEM", "-C", img("oem.img"), "16384"]);
    const drives = ["oem.img", "state.img", "persistent.img"].flatMap((f) => [
      "-drive",
      `file=${img(f)},format=raw,if=virtio,snapshot=on`,
    ]);

    const vm = await boot({
      firmware: "bios",
      kernel: fx.kernel,
      initrd: fx.initrd,
      append: "console=ttyS0 root=LABEL=COS_STATE cos-img/filename=/cOS/active.img",
      workDir: work,
      extraArgs: drives,
    });
    try {
      const sw = await vm.waitFor("KAIROS-INITRAMFS: switching root (installed)", 180_000);
      const up = await vm.waitFor(/KAIROS-TEST-BOOTED[^\r\n]*/, 200_000);
      console.log(
        `installed: switch_root at ${sw.seconds.toFixed(1)}s, multi-user at ${up.seconds.toFixed(1)}s: ${up.match}`,
      );
      assert.match(up.match, /mode=installed root=overlayfs/);
      const log = vm.log();
      console.log((log.match(/(kairos-initramfs: |mount: |FAT-fs)[^\r\n]*/g) ?? []).join("\n"));
      assert.match(log, /kairos-initramfs: COS_OEM \(\/dev\/vda\) at \/oem/);
      assert.match(log, /kairos-initramfs: COS_PERSISTENT \(\/dev\/vdc\) at \/usr\/local/);
    } finally {
      await vm.stop();
    }

    const bad = await boot({
      firmware: "bios",
      kernel: fx.kernel,
      initrd: fx.initrd,
      append: "console=ttyS0 root=LABEL=COS_STATE cos-img/filename=/cOS/passive.img rd.kairos.wait=5",
      workDir: work,
      extraArgs: drives,
    });
    try {
      const f = await bad.waitFor(/KAIROS-INITRAMFS-FAILED: [^\r\n]*/, 180_000, []);
      assert.match(f.match, /no \/cOS\/passive\.img on COS_STATE \(\/dev\/vdb\)/);
    } finally {
      await bad.stop();
    }
  });
});
