/**
 * The seed's own path, by hand, on the default base (see factory-seed.ts): the seed's
 * Dockerfile steps in a chroot, and kairos doctor accepts the result. The agent single
 * executable runs inside the chroot (the target's glibc).
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { DirectoryView, doctor, formatReport, parseOsRelease } from "../../src/factory/index.js";
import { VERSION } from "../../src/version.js";
import { tempDir } from "../helpers/tmp.js";
import { inChroot, seedPathRootfs } from "./factory-seed.js";

describe("the seed's Dockerfile steps by hand on the default base", { timeout: 20 * 60_000 }, () => {
  it("framework copied, units enabled, dracut initrd with the kairos module; doctor accepts it", async (t) => {
    assert.equal(
      process.getuid?.(),
      0,
      "this test needs root (chroot, device nodes): run scripts/test as root",
    );
    const work = await tempDir(t, "kairos-seed-");
    const r = await seedPathRootfs(work);
    console.log(`dracut in the chroot: ${r.dracutSeconds.toFixed(1)}s`);
    const view = new DirectoryView(r.root);

    // The agent runs on the target and reports its version.
    assert.equal((await inChroot(r.root, "/usr/bin/kairos-agent version")).stdout.trim(), VERSION);

    for (const l of [
      "/etc/systemd/system/timers.target.wants/cos-setup-reconcile.timer",
      "/etc/systemd/system/sysinit.target.wants/cos-setup-fs.service",
      "/etc/systemd/system/multi-user.target.wants/cos-setup-boot.service",
      "/etc/systemd/system/multi-user.target.wants/cos-setup-network.service",
    ]) {
      assert.equal((await view.lstat(l))?.type, "symlink", l);
    }
    for (const f of [
      "usr/lib/kairos/early-boot.sh",
      "usr/lib/dracut/hooks/cmdline/10-kairos-cmdline.sh",
      "usr/lib/dracut/hooks/mount/10-kairos-mount.sh",
      "squashfs.ko",
      "overlay.ko",
      "isofs.ko",
    ]) {
      assert.ok(r.lsinitrd.includes(f), `dracut initrd lacks ${f}`);
    }

    const report = await doctor(view);
    assert.equal(report.ok, true, formatReport(report));
    const os = parseOsRelease(await readFile(join(r.root, "etc/os-release"), "utf8"));
    assert.equal(os.get("KAIROS_VERSION"), "v9.9.9");
    assert.ok((await readdir(join(r.root, "boot"))).includes(`initrd-${r.kernelVersion}`));
    assert.equal(await view.realpath("/boot/initrd"), `/boot/initrd-${r.kernelVersion}`);
  });
});
