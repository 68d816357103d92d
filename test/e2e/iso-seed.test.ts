/**
 * The image made by the seed's by-hand Dockerfile path (framework copied in, identity in
 * os-release, cos-setup units enabled, Debian's dracut with our module; built by the factory's
 * test helper in a chroot) becomes an ISO with `kairos build iso dir:ROOTFS` — recognised as a
 * Kairos image by its KAIROS_* os-release fields, so no `kairos init` is applied — and boots
 * (BIOS CD-ROM, QEMU TCG) to multi-user with the embedded cloud-config applied.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { ensureDefaultBase } from "../../src/base/index.js";
import { boot } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";
import { cliIso, REPO } from "./iso-cli-fixture.js";

const HELPER = join(REPO, "test/integration/factory-seed.ts");

describe("the seed's Dockerfile path image boots from our ISO (QEMU TCG)", { timeout: 40 * 60_000 }, () => {
  it("dir: image → ISO → BIOS CD-ROM → multi-user, cloud-config applied", async (t) => {
    const { seedPathRootfs } = (await import(HELPER)) as {
      seedPathRootfs: (work: string) => Promise<{ root: string; kernelVersion: string }>;
    };
    const base = await ensureDefaultBase({});
    const work = await tempDir(t);
    const key = `${base.key}:${await readFile(HELPER, "utf8")}`;
    // The seed rootfs is built only when the cached ISO is missing (the key covers the helper).
    const { iso, log } = await cliIso(
      async () => `dir:${(await seedPathRootfs(work)).root}`,
      "iso-seed",
      key,
    );
    assert.doesNotMatch(log, /applying kairos init/, "a seed-path image is already a Kairos image");
    const vm = await boot({ firmware: "bios", cdrom: iso, workDir: work });
    try {
      const sw = await vm.waitFor("KAIROS-INITRAMFS: switching root (live)", 480_000);
      const up = await vm.waitFor(/KAIROS-E2E-UP[^\r\n]*/, 480_000);
      console.log(`seed path: switch_root ${sw.seconds.toFixed(1)}s, multi-user ${up.seconds.toFixed(1)}s`);
      assert.match(up.match, /root=overlay/);
      assert.match(up.match, /user=1000\b/);
      assert.match(up.match, /key=1\b/);
      assert.match(up.match, /config=#cloud-config/);
    } finally {
      await vm.stop();
    }
  });
});
