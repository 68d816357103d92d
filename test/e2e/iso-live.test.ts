/**
 * The ISO boots (QEMU TCG, serial console markers, bounded timeouts): BIOS (SeaBIOS) and UEFI
 * (OVMF), as a CD-ROM and as a disk (an ISO written to a USB stick), through GRUB, the
 * factory's initramfs (medium found by label, squashfs under a tmpfs overlay) to systemd's
 * multi-user target; and an ISO built by an unprivileged user boots too.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, cpSync, existsSync, linkSync, mkdirSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { type BootOptions, boot } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";
import { baseRootfsTar } from "./initramfs-fixture.js";
import { type IsoFixture, isoFixture } from "./iso-fixture.js";

const KAIROS = resolve(import.meta.dirname, "../../bin/kairos");

/** Boot `media` and wait for GRUB, switch_root and the multi-user marker; returns timings. */
async function bootToMultiUser(
  workDir: string,
  opts: Pick<BootOptions, "firmware" | "cdrom" | "disk">,
): Promise<{ grub: number; switchRoot: number; up: number; line: string }> {
  const vm = await boot({ ...opts, workDir });
  try {
    const grub = await vm.waitFor("Kairos (debug)", 90_000);
    const sw = await vm.waitFor("KAIROS-INITRAMFS: switching root (live)", 480_000);
    const up = await vm.waitFor(/KAIROS-ISO-BOOTED[^\r\n]*/, 480_000);
    return { grub: grub.seconds, switchRoot: sw.seconds, up: up.seconds, line: up.match };
  } finally {
    await vm.stop();
  }
}

function checkLive(line: string): void {
  assert.match(line, /root=overlay/, line);
  assert.match(line, /medium=[^ ]*rootfs\.squashfs/, line);
  assert.match(line, /medium=[^ ]*config\.yaml/, line);
  assert.match(line, /config=#cloud-config/, line);
  assert.match(
    line,
    /cmdline=[^ ]*root=live:CDLABEL=COS_LIVE,rd\.live\.dir=\/,rd\.live\.squashimg=rootfs\.squashfs/,
    line,
  );
}

describe("live ISO boots under QEMU (TCG)", { timeout: 45 * 60_000 }, async () => {
  const tar = await baseRootfsTar();
  let fx: IsoFixture | undefined;

  it("builds the live ISO from the base rootfs stream", async () => {
    fx = await isoFixture(tar!);
    console.log(`iso fixture: ${fx.iso} (built in ${fx.buildSeconds.toFixed(1)}s, cached afterwards)`);
    assert.ok(existsSync(fx.iso));
  });

  // CD-ROM boots of a full Kairos image are in iso-kairos.test.ts.
  for (const [firmware, how] of [["bios", "disk"]] as ["bios" | "uefi", "cdrom" | "disk"][]) {
    it(`${firmware.toUpperCase()} ${how === "cdrom" ? "CD-ROM" : "disk (USB stick)"}: GRUB menu → initramfs → multi-user`, {}, async (t) => {
      const work = await tempDir(t);
      const r = await bootToMultiUser(work, { firmware, [how]: fx!.iso });
      console.log(
        `${firmware}/${how}: grub ${r.grub.toFixed(1)}s, switch_root ${r.switchRoot.toFixed(1)}s, multi-user ${r.up.toFixed(1)}s`,
      );
      checkLive(r.line);
    });
  }

  it("an ISO built as user nobody (no root, no loop devices) boots with UEFI as a disk", {}, async (t) => {
    const work = await tempDir(t);
    chmodSync(work, 0o755);
    // nobody cannot read $HOME/.cache; a hard link to the base tar in our temp dir can be read.
    const tarLink = join(work, "rootfs.tar");
    linkSync(tar!, tarLink);
    // Likewise the overlay and the cloud-config.
    const overlay = join(work, "overlay");
    cpSync(fx!.overlay, overlay, { recursive: true, verbatimSymlinks: true });
    const cc = join(work, "config.yaml");
    copyFileSync(fx!.cloudConfig, cc);
    spawnSync("chmod", ["-R", "a+rX", overlay, cc]);
    const out = join(work, "out");
    mkdirSync(out);
    spawnSync("chown", ["65534:65534", out]);
    const t0 = Date.now();
    const b = spawnSync(
      "setpriv",
      [
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
        KAIROS,
        "build",
        "iso",
        "--rootfs-tar",
        tarLink,
        "--overlay-rootfs",
        overlay,
        "--cloud-config",
        cc,
        "--grub-timeout",
        "1",
        "--name",
        "rootless",
        "-o",
        out,
      ],
      { encoding: "utf8", env: { ...process.env, HOME: "/nonexistent", TMPDIR: "/tmp" } },
    );
    assert.equal(b.status, 0, `rootless build failed:\n${b.stderr}`);
    console.log(`rootless build: ${((Date.now() - t0) / 1000).toFixed(1)}s`);
    assert.deepEqual(readdirSync(out).sort(), ["rootless.iso", "rootless.iso.sha256"]);
    // The build never called mount or losetup (it could not have, as nobody); boot it.
    const r = await bootToMultiUser(work, { firmware: "uefi", disk: join(out, "rootless.iso") });
    console.log(
      `uefi/disk (rootless ISO): switch_root ${r.switchRoot.toFixed(1)}s, multi-user ${r.up.toFixed(1)}s`,
    );
    checkLive(r.line);
  });
});
