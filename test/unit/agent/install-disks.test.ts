import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { type TestContext, test } from "node:test";
import { resolveInstallDevice, type SystemPaths } from "../../../src/agent/index.js";
import { tempDir } from "../../helpers/tmp.js";

/** A fake /sys, /proc and /dev: disks vda (40 GiB), vdb (10 GiB), vdc (20 GiB, read-only), sr0 (the live CD). */
async function fakeSystem(t: TestContext, mountinfo: string[]): Promise<SystemPaths> {
  const root = await tempDir(t);
  const sys = join(root, "sys");
  const proc = join(root, "proc");
  const dev = join(root, "dev");
  const disk = async (name: string, gib: number, majmin: string, ro = false) => {
    const d = join(sys, "devices/virtual/block", name);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, "size"), `${gib * 2 * 1024 * 1024}\n`);
    await writeFile(join(d, "ro"), ro ? "1\n" : "0\n");
    await mkdir(join(sys, "block"), { recursive: true });
    await mkdir(join(sys, "class/block"), { recursive: true });
    await mkdir(join(sys, "dev/block"), { recursive: true });
    await symlink(d, join(sys, "block", name));
    await symlink(d, join(sys, "class/block", name));
    await symlink(d, join(sys, "dev/block", majmin));
    await mkdir(dev, { recursive: true });
    await writeFile(join(dev, name), "");
    return d;
  };
  const vda = await disk("vda", 40, "254:0");
  await disk("vdb", 10, "254:16");
  await disk("vdc", 20, "254:32", true);
  await disk("sr0", 1, "11:0");
  await disk("loop0", 1, "7:0");
  // vda1, a partition of vda.
  await mkdir(join(vda, "vda1"), { recursive: true });
  await writeFile(join(vda, "vda1", "partition"), "1\n");
  await writeFile(join(vda, "vda1", "size"), "2048\n");
  await symlink(join(vda, "vda1"), join(sys, "class/block", "vda1"));
  await symlink(join(vda, "vda1"), join(sys, "dev/block", "254:1"));
  await writeFile(join(dev, "vda1"), "");
  await mkdir(join(dev, "disk/by-id"), { recursive: true });
  await symlink("../../vdb", join(dev, "disk/by-id/virtio-small"));
  await mkdir(join(proc, "self"), { recursive: true });
  await writeFile(join(proc, "self/mountinfo"), `${mountinfo.join("\n")}\n`);
  return { sys, proc, dev };
}

const LIVE = "40 30 11:0 / /run/initramfs/live ro,relatime - iso9660 /dev/sr0 ro";
const LOOP = "41 30 7:0 / /run/rootfsbase ro,relatime - squashfs /dev/loop0 ro";

test("install.device auto: the largest writable disk that is neither the live medium nor mounted", async (t) => {
  const paths = await fakeSystem(t, [LIVE, LOOP]);
  assert.equal((await resolveInstallDevice("auto", paths)).device, "/dev/vda");
  assert.equal((await resolveInstallDevice(undefined, paths)).device, "/dev/vda");
  const busy = await fakeSystem(t, [LIVE, "50 30 254:1 / /mnt rw - ext4 /dev/vda1 rw"]);
  assert.equal((await resolveInstallDevice("auto", busy)).device, "/dev/vdb", "vda has a mounted partition");
});

test("named devices: /dev/disk/by-* resolves; the live medium, a mounted disk, a partition are refused", async (t) => {
  const paths = await fakeSystem(t, [LIVE, "50 30 254:1 / /mnt rw - ext4 /dev/vda1 rw"]);
  assert.equal((await resolveInstallDevice("/dev/disk/by-id/virtio-small", paths)).device, "/dev/vdb");
  await assert.rejects(resolveInstallDevice("/dev/sr0", paths), /\/dev\/sr0 holds the live medium/);
  await assert.rejects(
    resolveInstallDevice("/dev/vda", paths),
    /\/dev\/vda is in use \(a filesystem on it is mounted at \/mnt\)/,
  );
  await assert.rejects(
    resolveInstallDevice("/dev/vda1", paths),
    /not a whole disk \(it is a partition of \/dev\/vda\)/,
  );
  await assert.rejects(resolveInstallDevice("/dev/vdc", paths), /read-only/);
  await assert.rejects(resolveInstallDevice("/dev/nope", paths), /does not exist/);
  await assert.rejects(resolveInstallDevice("sda", paths), /is not auto or a \/dev path/);
});

test("auto with no usable disk says which disks were seen and why", async (t) => {
  const paths = await fakeSystem(t, [
    LIVE,
    "50 30 254:1 / /mnt rw - ext4 /dev/vda1 rw",
    "51 30 254:16 / /x rw - ext4 /dev/vdb rw",
  ]);
  await assert.rejects(resolveInstallDevice("auto", paths), (e: Error & { hint?: string }) => {
    assert.match(e.message, /no disk can be installed to/);
    assert.match(e.hint ?? "", /\/dev\/vdc \(\/dev\/vdc is read-only\)/);
    return true;
  });
});
