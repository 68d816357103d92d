import assert from "node:assert/strict";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  mountsOf,
  readGrubenv,
  resetSystem,
  resolveSlot,
  updateGrubenv,
  upgradeSystem,
  withWritablePartition,
} from "../../src/agent/index.js";
import { openImage, writeImage } from "../../src/oci/index.js";
import { run } from "../../src/sys/index.js";
import { loopExt4 } from "../helpers/loopfs.js";
import { tempDir } from "../helpers/tmp.js";

async function layout(t: Parameters<typeof tempDir>[0], version: string): Promise<string> {
  const dir = await tempDir(t, "kairos-reset-img-");
  const root = join(dir, "rootfs");
  await mkdir(join(root, "boot"), { recursive: true });
  await mkdir(join(root, "etc"), { recursive: true });
  await writeFile(join(root, "boot/vmlinuz"), `kernel ${version}\n`);
  await writeFile(join(root, "boot/initrd"), `initrd ${version}\n`);
  await writeFile(join(root, "etc/kairos-release"), `KAIROS_VERSION="${version}"\n`);
  const image = await openImage(`dir:${root}`);
  await writeImage(image, `oci:${join(dir, "layout")}:${version}`);
  await image.close();
  return `oci:${join(dir, "layout")}:${version}`;
}

describe("reset from recovery (loop-mounted ext4 partitions)", () => {
  it("redeploys active and passive from recovery, wipes persistent, keeps OEM unless --reset-oem", async (t) => {
    const state = await loopExt4(t, 32);
    const recovery = await loopExt4(t, 32);
    const persistent = await loopExt4(t, 32);
    const oem = join(await tempDir(t), "oem");
    await mkdir(oem);
    const grubenv = join(oem, "grubenv");
    const stateCos = join(state.dir, "cOS");
    const recoveryCos = join(recovery.dir, "cOS");
    await upgradeSystem({ cos: recoveryCos, source: await layout(t, "v1-recovery"), target: "recovery" });
    await upgradeSystem({ cos: stateCos, source: await layout(t, "v1"), target: "active", grubenv });
    await upgradeSystem({ cos: stateCos, source: await layout(t, "v2"), target: "active", grubenv });
    await mkdir(join(persistent.dir, ".ssh"), { recursive: true });
    await writeFile(join(persistent.dir, ".ssh/authorized_keys"), "ssh-ed25519 AAAA\n");
    await writeFile(join(persistent.dir, "data"), "user data\n");
    await writeFile(join(oem, "90_custom.yaml"), "#cloud-config\n");
    await updateGrubenv(grubenv, { next_entry: "statereset", upgrade_failure: "1" });

    const info = await resetSystem({ stateCos, recoveryCos, persistent: persistent.dir, oem });
    assert.equal(info.version, "v1-recovery");
    for (const name of ["active", "passive"] as const) {
      const s = await resolveSlot(stateCos, name);
      assert.equal(s?.info.version, "v1-recovery", name);
      assert.equal(await readFile(join(s!.dir, "vmlinuz"), "utf8"), "kernel v1-recovery\n");
    }
    assert.equal((await readdir(join(stateCos, "slots"))).length, 1, "old slots removed");
    assert.deepEqual(await readdir(persistent.dir), ["lost+found"]);
    assert.equal(await readFile(join(oem, "90_custom.yaml"), "utf8"), "#cloud-config\n");
    const env = await readGrubenv(grubenv);
    assert.equal(env.get("next_entry"), undefined);
    assert.equal(env.get("upgrade_failure"), undefined);
    await state.remount();
    assert.equal((await resolveSlot(stateCos, "active"))?.info.version, "v1-recovery");

    await resetSystem({ stateCos, recoveryCos, persistent: persistent.dir, oem, resetOem: true });
    assert.deepEqual(await readdir(oem), ["grubenv"]);
  });

  it("refuses without a recovery system and changes nothing", async (t) => {
    const state = await loopExt4(t, 32);
    const dir = await tempDir(t);
    const stateCos = join(state.dir, "cOS");
    await upgradeSystem({ cos: stateCos, source: await layout(t, "v1"), target: "active" });
    await writeFile(join(dir, "keep"), "x");
    await assert.rejects(
      resetSystem({ stateCos, recoveryCos: join(dir, "none"), persistent: dir, oem: dir }),
      /no complete recovery system/,
    );
    assert.deepEqual((await readdir(dir)).sort(), ["keep"]);
    assert.equal((await resolveSlot(stateCos, "active"))?.info.version, "v1");
  });
});

describe("withWritablePartition (a labelled loop device)", () => {
  it("remounts a read-only mount read-write for the call and back to read-only", async (t) => {
    const label = `KTS${process.pid}`.slice(0, 16);
    const fs = await loopExt4(t, 16, label);
    await run("mount", ["-o", "remount,ro", fs.dir]);
    assert.equal((await mountsOf(fs.device))[0]?.readOnly, true);
    const seen = await withWritablePartition(label, async (dir) => {
      await writeFile(join(dir, "written"), "ok");
      return dir;
    });
    assert.equal(seen, fs.dir);
    const after = await mountsOf(fs.device);
    assert.equal(after[0]?.readOnly, true);
    assert.equal(await readFile(join(fs.dir, "written"), "utf8"), "ok");
    await assert.rejects(
      withWritablePartition("KTS_NO_SUCH_LABEL", async () => 0),
      /no partition labelled/,
    );
  });
});
