import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gunzipSync, gzipSync } from "node:zlib";
import { buildInitramfs, kernelOf, parseModulesDep, selectModules } from "../../../src/factory/index.js";
import { run, start } from "../../../src/sys/index.js";
import { DEB_KVER, debianTree, makeTarView } from "./trees.js";

const DEP = `kernel/fs/squashfs/squashfs.ko:
kernel/fs/overlayfs/overlay.ko:
kernel/drivers/scsi/sr_mod.ko: kernel/drivers/cdrom/cdrom.ko kernel/drivers/scsi/scsi_common.ko
kernel/drivers/cdrom/cdrom.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/usb/storage/usb-storage.ko.xz: kernel/drivers/usb/core/usbcore.ko.zst
kernel/drivers/usb/core/usbcore.ko.zst:
kernel/drivers/net/ethernet/intel/e1000/e1000.ko:
`;

describe("module selection", () => {
  it("parses modules.dep", () => {
    const dep = parseModulesDep(DEP);
    assert.deepEqual(dep.get("kernel/drivers/scsi/sr_mod.ko"), [
      "kernel/drivers/cdrom/cdrom.ko",
      "kernel/drivers/scsi/scsi_common.ko",
    ]);
  });

  it("adds soft dependencies by module name or exact alias (ext4 pre: crypto-crc32c)", () => {
    const dep = `${DEP}kernel/fs/ext4/ext4.ko: kernel/fs/jbd2/jbd2.ko\nkernel/fs/jbd2/jbd2.ko:\nkernel/crypto/crc32c_generic.ko:\nkernel/arch/x86/crypto/crc32c-intel.ko:\nkernel/lib/zzz.ko:\n`;
    const soft = "# comment\nsoftdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: zzz\n";
    const alias =
      "alias crypto-crc32c crc32c_generic\nalias crypto-crc32c crc32c_intel\nalias crypto-crc32* e1000\n";
    const s = selectModules(dep, "", ["ext4"], soft, alias);
    assert.deepEqual(s.paths, [
      "kernel/fs/jbd2/jbd2.ko",
      "kernel/lib/zzz.ko",
      "kernel/fs/ext4/ext4.ko",
      "kernel/crypto/crc32c_generic.ko",
      "kernel/arch/x86/crypto/crc32c-intel.ko",
    ]);
  });

  it("refuses modules.dep entries that climb out of the modules directory", () => {
    assert.throws(
      () => parseModulesDep("kernel/a.ko: ../../../etc/shadow\n"),
      /outside the modules directory: \.\.\/\.\.\/\.\.\/etc\/shadow/,
    );
    assert.throws(() => parseModulesDep("/etc/passwd:\n"), /outside the modules directory: \/etc\/passwd/);
  });

  it("closes over dependencies, dependencies first; '-' and '_' are the same; compressed names resolve", () => {
    const s = selectModules(DEP, "kernel/fs/ext4/ext4.ko\n", ["sr_mod", "usb_storage", "ext4", "nvme"]);
    assert.deepEqual(s.paths, [
      "kernel/drivers/scsi/scsi_common.ko",
      "kernel/drivers/cdrom/cdrom.ko",
      "kernel/drivers/scsi/sr_mod.ko",
      "kernel/drivers/usb/core/usbcore.ko.zst",
      "kernel/drivers/usb/storage/usb-storage.ko.xz",
    ]);
    assert.deepEqual(s.builtin, ["ext4"]);
    assert.deepEqual(s.notFound, ["nvme"]);
  });
});

describe("initramfs contents", () => {
  it("holds busybox, /init, dev nodes and the selected modules with rewritten indexes", async () => {
    const spec = debianTree();
    const base = `/usr/lib/modules/${DEB_KVER}`;
    spec.files![`${base}/modules.dep`] =
      "kernel/fs/squashfs/squashfs.ko:\nkernel/fs/overlayfs/overlay.ko:\nkernel/sound/snd.ko:\n";
    spec.files![`${base}/kernel/fs/overlayfs/overlay.ko`] = "overlay-ko";
    spec.files![`${base}/kernel/sound/snd.ko`] = "not wanted";
    spec.files![`${base}/modules.alias`] =
      "alias fs-squashfs squashfs\nalias pci:v*d*sv*sd*bc04* snd\nalias fs-overlay overlay\n";
    const view = await makeTarView(spec);
    const kernel = await kernelOf(view);
    const r = await buildInitramfs({
      view,
      kernel,
      modules: ["squashfs", "overlay", "isofs"],
      compression: "gzip",
    });
    assert.deepEqual(r.modules, ["kernel/fs/squashfs/squashfs.ko", "kernel/fs/overlayfs/overlay.ko"]);
    assert.deepEqual(r.notFound, ["isofs"]);
    const raw = gunzipSync(r.data);
    assert.equal(raw.length, r.uncompressedSize);
    const { stdout } = await run("cpio", ["-it", "--quiet"], { input: raw });
    const names = new Set(stdout.split("\n"));
    for (const n of [
      "init",
      "bin/busybox",
      "bin/sh",
      "sbin/modprobe",
      "sbin/switch_root",
      "dev/console",
      `lib/modules/${DEB_KVER}/kernel/fs/overlayfs/overlay.ko`,
    ]) {
      assert.ok(names.has(n), `missing ${n}`);
    }
    assert.ok(!names.has(`lib/modules/${DEB_KVER}/kernel/sound/snd.ko`));
    const dep = await run(
      "sh",
      [
        "-c",
        `cpio -i --quiet --to-stdout lib/modules/${DEB_KVER}/modules.dep lib/modules/${DEB_KVER}/modules.alias`,
      ],
      { input: raw },
    );
    assert.equal(
      dep.stdout,
      "kernel/fs/squashfs/squashfs.ko:\nkernel/fs/overlayfs/overlay.ko:\nalias fs-squashfs squashfs\nalias fs-overlay overlay\n",
    );
  });

  it("decompresses .ko.xz, .ko.zst and .ko.gz modules (busybox insmod reads plain .ko only)", async () => {
    const spec = debianTree();
    const base = `/usr/lib/modules/${DEB_KVER}`;
    const xz = (await runBytes("xz", ["-c"], Buffer.from("xz-module"))).toString("latin1");
    const zst = (await runBytes("zstd", ["-q", "-c"], Buffer.from("zstd-module"))).toString("latin1");
    spec.files![`${base}/modules.dep`] =
      "kernel/a.ko.xz: kernel/b.ko.zst\nkernel/b.ko.zst:\nkernel/c.ko.gz:\n";
    spec.files![`${base}/kernel/a.ko.xz`] = Buffer.from(xz, "latin1");
    spec.files![`${base}/kernel/b.ko.zst`] = Buffer.from(zst, "latin1");
    spec.files![`${base}/kernel/c.ko.gz`] = gzipSync("gz-module");
    const view = await makeTarView(spec);
    const r = await buildInitramfs({
      view,
      kernel: await kernelOf(view),
      modules: ["a", "c"],
      compression: "none",
    });
    const out = async (f: string) =>
      (await run("cpio", ["-i", "--quiet", "--to-stdout", `lib/modules/${DEB_KVER}/${f}`], { input: r.data }))
        .stdout;
    assert.equal(await out("kernel/a.ko"), "xz-module");
    assert.equal(await out("kernel/b.ko"), "zstd-module");
    assert.equal(await out("kernel/c.ko"), "gz-module");
    assert.equal(await out("modules.dep"), "kernel/b.ko:\nkernel/a.ko: kernel/b.ko\nkernel/c.ko:\n");
  });

  it("refuses a kernel whose modules.dep names a module the image lacks", async () => {
    const spec = debianTree();
    spec.files![`/usr/lib/modules/${DEB_KVER}/modules.dep`] = "kernel/fs/isofs/isofs.ko:\n";
    const view = await makeTarView(spec);
    await assert.rejects(
      buildInitramfs({ view, kernel: await kernelOf(view), modules: ["isofs"], compression: "none" }),
      /module \/usr\/lib\/modules\/6\.1\.0-28-amd64\/kernel\/fs\/isofs\/isofs\.ko is listed in modules\.dep but missing/,
    );
  });

  it("refuses an image without a kernel", async () => {
    const spec = debianTree();
    delete spec.files![`/boot/vmlinuz-${DEB_KVER}`];
    await assert.rejects(kernelOf(await makeTarView(spec)), /no kernel in \/boot/);
  });
});

async function runBytes(tool: string, args: string[], input: Buffer): Promise<Buffer> {
  const p = start(tool, args);
  const out: Buffer[] = [];
  p.stdout.on("data", (c: Buffer) => out.push(c));
  p.stdin.end(input);
  await p.done;
  return Buffer.concat(out);
}
