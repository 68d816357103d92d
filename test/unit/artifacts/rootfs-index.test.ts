import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { findBootFiles } from "../../../src/artifacts/rootfs-files.js";
import { RootfsIndex, worthCapturing } from "../../../src/artifacts/rootfs-index.js";
import { squashfsFromTar } from "../../../src/artifacts/squashfs.js";
import { type TarHeader, type WriteEntry, writeTar } from "../../../src/tar/index.js";
import { chunked, tempDir } from "../../helpers/tmp.js";

type Spec =
  | [path: string, kind: "dir"]
  | [path: string, kind: "file", content: string]
  | [path: string, kind: "symlink" | "hardlink", target: string];

function entries(specs: Spec[]): WriteEntry[] {
  return specs.map(([path, kind, arg]) => {
    const base: TarHeader = {
      path,
      type: "file",
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: 0,
      mtime: 1_700_000_000,
    };
    if (kind === "dir") return { header: { ...base, type: "directory", mode: 0o755 } };
    if (kind === "symlink") return { header: { ...base, type: "symlink", mode: 0o777, linkname: arg } };
    if (kind === "hardlink") return { header: { ...base, type: "hardlink", linkname: arg } };
    const body = Buffer.from(arg);
    // Stream bodies in small pieces, as the flattener does, so the tee sees several chunks.
    return { header: { ...base, size: body.length }, body: chunked(body, 3) };
  });
}

/**
 * Pack `specs` with tar2sqfs through the index, then find the boot files both ways: from the
 * index (what the build uses) and from the squashfs (the reference). They must agree, and so
 * must the extracted contents.
 */
async function bothWays(t: import("node:test").TestContext, specs: Spec[]) {
  const dir = await tempDir(t);
  const index = new RootfsIndex(join(dir, "captured"), "test rootfs");
  const img = join(dir, "rootfs.squashfs");
  await squashfsFromTar(writeTar(index.tap(entries(specs))), img);
  const fromIndex = await findBootFiles(index);
  const fromImage = await findBootFiles(img);
  assert.deepEqual(fromIndex, fromImage);
  await index.extract(fromIndex.kernel, img, join(dir, "kernel"));
  await index.extract(fromIndex.initrd, img, join(dir, "initrd"));
  return {
    boot: fromIndex,
    kernel: await readFile(join(dir, "kernel"), "utf8"),
    initrd: await readFile(join(dir, "initrd"), "utf8"),
    text: (p: string) => index.readText(p, img),
  };
}

test("Debian layout: /vmlinuz and /initrd.img symlinks, newest of two kernels, os-release via symlink", async (t) => {
  const r = await bothWays(t, [
    ["boot", "dir"],
    ["boot/vmlinuz-6.1.0-9-amd64", "file", "old kernel"],
    ["boot/vmlinuz-6.1.0-13-amd64", "file", "new kernel"],
    ["boot/initrd.img-6.1.0-13-amd64", "file", "new initrd"],
    ["vmlinuz", "symlink", "boot/vmlinuz-6.1.0-13-amd64"],
    ["initrd.img", "symlink", "boot/initrd.img-6.1.0-13-amd64"],
    ["usr", "dir"],
    ["usr/lib", "dir"],
    ["usr/lib/os-release", "file", 'NAME="Debian"\nKAIROS_NAME=test\n'],
    ["etc", "dir"],
    ["etc/os-release", "symlink", "../usr/lib/os-release"],
  ]);
  assert.equal(r.boot.kernel, "/boot/vmlinuz-6.1.0-13-amd64");
  assert.equal(r.kernel, "new kernel");
  assert.equal(r.initrd, "new initrd");
  assert.match((await r.text("/etc/os-release")) ?? "", /KAIROS_NAME=test/);
  assert.equal(await r.text("/etc/kairos-release"), undefined);
});

test("Kairos contract: /boot/vmlinuz symlink and /boot/initrd as a hardlink", async (t) => {
  const r = await bothWays(t, [
    ["boot", "dir"],
    ["boot/vmlinuz-6.6.1", "file", "kernel 6.6"],
    ["boot/vmlinuz", "symlink", "vmlinuz-6.6.1"],
    ["boot/initramfs-6.6.1.img", "file", "kairos initrd"],
    ["boot/initrd", "hardlink", "boot/initramfs-6.6.1.img"],
  ]);
  assert.deepEqual([r.boot.kernel, r.boot.initrd], ["/boot/vmlinuz-6.6.1", "/boot/initrd"]);
  assert.equal(r.kernel, "kernel 6.6");
  assert.equal(r.initrd, "kairos initrd");
});

test("Fedora layout without directory entries: kernel under /usr/lib/modules through a /lib symlink", async (t) => {
  const r = await bothWays(t, [
    ["lib", "symlink", "usr/lib"],
    ["usr/lib/modules/6.5.6-300.fc39.x86_64/vmlinuz", "file", "fedora kernel"],
    ["boot/initramfs-6.5.6-300.fc39.x86_64.img", "file", "fedora initrd"],
  ]);
  assert.equal(r.boot.kernel, "/usr/lib/modules/6.5.6-300.fc39.x86_64/vmlinuz");
  assert.equal(r.kernel, "fedora kernel");
  assert.equal(r.initrd, "fedora initrd");
});

test("a kernel the index did not keep is read back from the squashfs", async (t) => {
  assert.equal(worthCapturing("opt/kernels/vmlinuz-7"), false);
  const r = await bothWays(t, [
    ["opt/kernels/vmlinuz-7", "file", "kernel kept elsewhere"],
    ["boot/vmlinuz", "symlink", "/opt/kernels/vmlinuz-7"],
    ["boot/initrd", "file", "initrd"],
  ]);
  assert.equal(r.boot.kernel, "/opt/kernels/vmlinuz-7");
  assert.equal(r.kernel, "kernel kept elsewhere");
});

test("no kernel: the same refusal as from the squashfs", async (t) => {
  const dir = await tempDir(t);
  const index = new RootfsIndex(join(dir, "captured"), "test rootfs");
  await squashfsFromTar(writeTar(index.tap(entries([["etc/hostname", "file", "x\n"]]))), join(dir, "r.sqfs"));
  await assert.rejects(findBootFiles(index), (err: Error & { hint?: string }) => {
    assert.match(err.message, /has no kernel/);
    assert.match(err.hint ?? "", /kairos doctor/);
    return true;
  });
});
