/**
 * The main path under QEMU (TCG): `kairos build iso <default base>` applies `kairos
 * init` on the fly, embeds a cloud-config, and the ISO boots (BIOS and UEFI, CD-ROM) to
 * multi-user; the cloud-config from the ISO was applied by the agent: its user with the SSH
 * authorized key exists and its `stages.boot` command ran.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ensureDefaultBase } from "../../src/base/index.js";
import { boot } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";
import { cliIso } from "./iso-cli-fixture.js";

describe("kairos build iso <base> boots to a configured live system (QEMU TCG)", {
  timeout: 40 * 60_000,
}, () => {
  let iso: string | undefined;

  it("builds the ISO from the default base, applying kairos init on the fly", async () => {
    const base = await ensureDefaultBase({});
    const r = await cliIso(base.ref, "iso-kairos", base.key);
    iso = r.iso;
    assert.match(r.log, /applying kairos init on the fly/);
    assert.match(r.log, /kernel:\s+\/boot\/vmlinuz-/);
    assert.match(r.log, /initrd:\s+\/boot\/initrd-/);
  });

  for (const firmware of ["bios", "uefi"] as const) {
    it(`${firmware.toUpperCase()} CD-ROM: multi-user, cloud-config user + SSH key, stages.boot ran`, async (t) => {
      assert.ok(iso, "the ISO was not built");
      const work = await tempDir(t);
      const vm = await boot({ firmware, cdrom: iso, workDir: work });
      try {
        await vm.waitFor("Kairos (debug)", 120_000);
        const sw = await vm.waitFor("KAIROS-INITRAMFS: switching root (live)", 480_000);
        const stage = await vm.waitFor("KAIROS-STAGE-BOOT-RAN", 480_000);
        const up = await vm.waitFor(/KAIROS-E2E-UP[^\r\n]*/, 480_000);
        console.log(
          `${firmware}: switch_root ${sw.seconds.toFixed(1)}s, stages.boot ${stage.seconds.toFixed(1)}s, multi-user ${up.seconds.toFixed(1)}s`,
        );
        assert.match(up.match, /root=overlay/);
        assert.match(up.match, /user=1000\b/, "the cloud-config's user exists");
        assert.match(up.match, /key=1\b/, "with its SSH authorized key");
        assert.match(up.match, /config=#cloud-config/, "the ISO's config.yaml is at /run/initramfs/live");
        // `state` prints uuid first (as upstream), then boot.
        assert.match(up.match, /state=.*\bboot: livecd_boot\b/, "kairos-agent state says it is a live boot");
      } finally {
        await vm.stop();
      }
    });
  }
});
