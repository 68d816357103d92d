/**
 * ISO and netboot builds with the real tools (tar2sqfs, grub-mkimage, mkfs.vfat, mtools,
 * xorriso) from a small fixture rootfs; the results are checked with independent readers
 * (xorriso's own reports, sgdisk, unsquashfs, rdsquashfs, sha256sum).
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { buildIso, buildNetbootFiles, rootfsFromTarFile } from "../../src/artifacts/index.js";
import { extractFromIso } from "../helpers/iso.js";
import {
  FIXTURE_BINARY_XATTR,
  FIXTURE_CAP,
  FIXTURE_INITRD,
  FIXTURE_KERNEL,
  writeFixtureTar,
} from "../helpers/rootfs-fixture.js";
import { tempDir } from "../helpers/tmp.js";

const KAIROS = resolve(import.meta.dirname, "../../bin/kairos");

function sh(cmd: string, args: string[], opts: { cwd?: string } = {}): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], ...opts });
}

function kairos(args: string[], opts: { cwd?: string } = {}) {
  return spawnSync(KAIROS, args, { encoding: "utf8", ...opts });
}

const GOOD_CONFIG = `#cloud-config
users:
  - name: kairos
    passwd: kairos
stages:
  boot:
    - name: marker
      commands:
        - echo hello
`;

test("ISO from a rootfs tar: hybrid layout, boot files, config, checksum, squashfs metadata", async (t) => {
  const dir = await tempDir(t);
  const tar = join(dir, "rootfs.tar");
  await writeFixtureTar(tar);
  const cc = join(dir, "config.yaml");
  writeFileSync(cc, GOOD_CONFIG);
  const overlay = join(dir, "overlay-iso");
  mkdirSync(join(overlay, "extra"), { recursive: true });
  writeFileSync(join(overlay, "extra", "README"), "overlay file\n");
  const overlayRoot = join(dir, "overlay-rootfs");
  mkdirSync(join(overlayRoot, "etc"), { recursive: true });
  writeFileSync(join(overlayRoot, "etc", "hostname"), "from-overlay\n");
  writeFileSync(join(overlayRoot, "etc", "motd"), "hi\n");

  const out = join(dir, "out");
  const r = await buildIso({
    rootfs: await rootfsFromTarFile(tar),
    outDir: out,
    cloudConfigFile: cc,
    overlayIso: overlay,
    overlayRootfs: overlayRoot,
  });
  // Name from kairos-release; nothing else left in the output directory.
  assert.equal(r.name, "kairos-core-fixture-v0.1.0");
  assert.deepEqual(readdirSync(out).sort(), [
    "kairos-core-fixture-v0.1.0.iso",
    "kairos-core-fixture-v0.1.0.iso.sha256",
  ]);
  assert.equal(r.imageKernel, "/boot/vmlinuz-6.1.0-test");
  assert.equal(r.imageInitrd, "/boot/initrd.img-6.1.0-test");
  // The checksum file is in sha256sum format and verifies.
  assert.match(sh("sha256sum", ["-c", `${r.name}.iso.sha256`], { cwd: out }), /: OK/);

  // Volume label, El Torito BIOS + UEFI, GPT with an EFI system partition.
  const report = sh("xorriso", [
    "-indev",
    r.iso,
    "-pvd_info",
    "-report_el_torito",
    "plain",
    "-report_system_area",
    "plain",
  ]);
  assert.match(report, /Volume Id\s+: COS_LIVE/);
  assert.match(report, /El Torito boot img :\s+1\s+BIOS\s+y\s+none/);
  assert.match(report, /El Torito boot img :\s+2\s+UEFI\s+y\s+none/);
  assert.match(report, /El Torito img path :\s+1\s+\/boot\/grub\/i386-pc\/eltorito.img/);
  assert.match(report, /grub2-mbr/);
  const gpt = sh("sgdisk", ["-p", r.iso]);
  assert.match(gpt, /\s2\s+\d+\s+\d+\s+[\d.]+ MiB\s+EF00/);
  assert.match(sh("sgdisk", ["-v", r.iso]), /No problems found/);
  // ISO9660 signature where the initramfs looks for it.
  const head = readFileSync(r.iso).subarray(32769, 32774).toString("latin1");
  assert.equal(head, "CD001");

  // Files at the ISO root, as upstream Kairos lays them out.
  const x = join(dir, "x");
  mkdirSync(x);
  for (const [p, f] of [
    ["/boot/kernel", "kernel"],
    ["/boot/initrd", "initrd"],
    ["/config.yaml", "config.yaml"],
    ["/boot/grub/grub.cfg", "grub.cfg"],
    ["/rootfs.squashfs", "rootfs.squashfs"],
    ["/extra/README", "README"],
  ]) {
    await extractFromIso(r.iso, p!, join(x, f!));
  }
  assert.deepEqual(readFileSync(join(x, "kernel")), FIXTURE_KERNEL);
  assert.deepEqual(readFileSync(join(x, "initrd")), FIXTURE_INITRD);
  assert.equal(readFileSync(join(x, "config.yaml"), "utf8"), GOOD_CONFIG);
  assert.equal(readFileSync(join(x, "README"), "utf8"), "overlay file\n");
  assert.match(readFileSync(join(x, "grub.cfg"), "utf8"), /menuentry "Kairos \(debug\)"/);

  // The squashfs keeps owners, setuid, device nodes, hardlinks and binary capabilities;
  // the ACL squashfs cannot store is dropped, and the rootfs overlay is applied.
  const sq = join(x, "rootfs.squashfs");
  const lls = sh("unsquashfs", ["-lln", sq]);
  assert.match(lls, /-rwsr-xr-x 0\/0\s+\d+ [\d-]+ [\d:]+ squashfs-root\/usr\/bin\/ping\n/);
  assert.match(lls, /crw-rw-rw- 0\/0\s+1,\s+3 [\d-]+ [\d:]+ squashfs-root\/dev\/null/);
  assert.match(lls, /drwx------ 1000\/1000 .* squashfs-root\/home\/user\n/);
  assert.match(lls, /-rw------- 1000\/1000 .* squashfs-root\/home\/user\/notes.txt/);
  assert.match(lls, /drwxr-sr-x 0\/0 .* squashfs-root\/var\/log\/journal/);
  assert.match(lls, /-rw-r--r-- 0\/0 .* squashfs-root\/etc\/motd/);
  const statPing = sh("rdsquashfs", ["--stat", "/usr/bin/ping2", sq]);
  assert.match(statPing, /Hard link count: 2/);
  const capDump = sh("unsquashfs", ["-cat", sq, "etc/hostname"]);
  assert.equal(capDump, "from-overlay\n");
  const xattrs = sh("rdsquashfs", ["--xattr", "/usr/bin/ping", sq]);
  assert.match(xattrs, /security.capability/);
  const journalX = sh("rdsquashfs", ["--xattr", "/var/log/journal", sq]);
  assert.match(journalX, /user.note/);
  assert.doesNotMatch(journalX, /posix_acl/);
  // Byte-exact capability value: unpack as root with xattrs and read it back.
  if (process.getuid?.() === 0) {
    const un = join(dir, "un");
    sh("unsquashfs", ["-d", un, sq, "usr/bin/ping"]);
    const hex = sh("getfattr", [
      "-n",
      "security.capability",
      "-e",
      "hex",
      "--absolute-names",
      join(un, "usr/bin/ping"),
    ]);
    assert.match(hex, new RegExp(`security.capability=0x${FIXTURE_CAP.toString("hex")}`));
    const bin = sh("getfattr", [
      "-n",
      "user.binary",
      "-e",
      "hex",
      "--absolute-names",
      join(un, "usr/bin/ping"),
    ]);
    assert.match(bin, new RegExp(`user.binary=0x${FIXTURE_BINARY_XATTR.toString("hex")}`));
  }
});

test("netboot files come from the same code path", async (t) => {
  const dir = await tempDir(t);
  const tar = join(dir, "rootfs.tar");
  await writeFixtureTar(tar);
  const out = join(dir, "nb");
  const r = await buildNetbootFiles({
    rootfs: await rootfsFromTarFile(tar),
    outDir: out,
    baseUrl: "http://10.1.2.3:8080/",
    extraCmdline: "install-mode",
  });
  assert.deepEqual(readdirSync(out).sort(), [
    "kairos-cmdline",
    "kairos-initrd",
    "kairos-kernel",
    "kairos.squashfs",
  ]);
  assert.deepEqual(readFileSync(r.kernel), FIXTURE_KERNEL);
  assert.deepEqual(readFileSync(r.initrd), FIXTURE_INITRD);
  assert.equal(
    readFileSync(r.cmdlineFile, "utf8"),
    "root=live:http://10.1.2.3:8080/kairos.squashfs ip=dhcp rd.neednet=1 netboot console=tty1 console=ttyS0 install-mode\n",
  );
  assert.match(sh("unsquashfs", ["-lln", r.squashfs]), /usr\/bin\/ping/);
});

test("CLI: a cloud-config that fails validation names file:line:col and writes no ISO", async (t) => {
  const dir = await tempDir(t);
  const tar = join(dir, "rootfs.tar");
  await writeFixtureTar(tar);
  const bad = join(dir, "bad.yaml");
  writeFileSync(bad, "#cloud-config\nusers:\n  - name: kairos\n    groups: 42\ninstall:\n  auto: maybe\n");
  const out = join(dir, "out");
  const res = kairos(["build", "iso", "--rootfs-tar", tar, "-o", out, "--cloud-config", bad]);
  assert.notEqual(res.status, 0);
  assert.match(res.stderr, new RegExp(`${bad.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}:\\d+:\\d+: `));
  assert.doesNotMatch(res.stderr, /at .*\.ts:\d+/, "no stack trace");
  assert.equal(existsSync(out), false, "nothing written, not even the output directory");

  const yamlErr = join(dir, "yaml.yaml");
  writeFileSync(yamlErr, "#cloud-config\nusers: [\n");
  const r2 = kairos(["build", "iso", "--rootfs-tar", tar, "-o", out, "--cloud-config", yamlErr]);
  assert.notEqual(r2.status, 0);
  assert.match(r2.stderr, /yaml.yaml:\d+:\d+/);

  const noHeader = join(dir, "nohdr.yaml");
  writeFileSync(noHeader, "users: []\n");
  const r3 = kairos(["build", "iso", "--rootfs-tar", tar, "-o", out, "--cloud-config", noHeader]);
  assert.notEqual(r3.status, 0);
  assert.match(r3.stderr, /nohdr.yaml:1:1: not a cloud-config/);
  assert.equal(existsSync(out), false);
});

test("CLI: an image without a kernel points to kairos doctor and leaves nothing behind", async (t) => {
  const dir = await tempDir(t);
  const tar = join(dir, "nokernel.tar");
  await writeFixtureTar(tar, { kernel: false });
  const out = join(dir, "out");
  const res = kairos(["build", "iso", "--rootfs-tar", tar, "-o", out]);
  assert.notEqual(res.status, 0);
  assert.match(res.stderr, /error: the image has no kernel/);
  assert.match(res.stderr, /hint: .*kairos doctor/);
  assert.deepEqual(readdirSync(out), [], "temp files removed");
});

test("CLI: an unwritable output directory is refused before any work", async (t) => {
  const dir = await tempDir(t);
  const tar = join(dir, "rootfs.tar");
  await writeFixtureTar(tar);
  // Under a regular file: cannot be created, whoever we are.
  writeFileSync(join(dir, "afile"), "");
  const r1 = kairos(["build", "iso", "--rootfs-tar", tar, "-o", join(dir, "afile", "out")]);
  assert.notEqual(r1.status, 0);
  assert.match(r1.stderr, /error: cannot create output directory .*afile\/out: ENOTDIR/);
  // A read-only directory, as an unprivileged user (root could write anyway).
  const ro = join(dir, "ro");
  mkdirSync(ro);
  chmodSync(dir, 0o755);
  chmodSync(tar, 0o644);
  chmodSync(ro, 0o555);
  chownSync(ro, 0, 0);
  const r2 = spawnSync(
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
      tar,
      "-o",
      ro,
    ],
    { encoding: "utf8", env: { ...process.env, HOME: "/tmp" } },
  );
  assert.notEqual(r2.status, 0);
  assert.match(r2.stderr, /error: output directory .*\/ro is not writable/);
  assert.deepEqual(readdirSync(ro), []);
});

test("CLI: a full disk removes the partial ISO and says so", async (t) => {
  assert.equal(process.getuid?.(), 0, "this test needs root (a private tmpfs): run scripts/test as root");
  const dir = await tempDir(t);
  const tar = join(dir, "rootfs.tar");
  // A rootfs bigger than the 4 MiB filesystem we give the build (incompressible data).
  const big = Buffer.alloc(6 * 1024 * 1024);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((Math.imul(i, 2654435761) ^ (i >>> 7)) >>> 0, i);
  await writeFixtureTar(tar, {
    extra: [
      {
        header: {
          path: "usr/bin/blob",
          type: "file",
          mode: 0o644,
          uid: 0,
          gid: 0,
          size: big.length,
          mtime: 0,
        },
        body: big,
      },
    ],
  });
  const mnt = join(dir, "small");
  mkdirSync(mnt);
  // A private mount namespace: the tmpfs exists only for this command.
  const script = `mount -t tmpfs -o size=4m tmpfs "$1" && "$2" build iso --rootfs-tar "$3" -o "$1"; rc=$?; echo "LEFT:$(ls -A "$1" | tr '\\n' ' ')"; exit $rc`;
  const res = spawnSync(
    "unshare",
    ["-m", "--propagation", "private", "sh", "-c", script, "sh", mnt, KAIROS, tar],
    {
      encoding: "utf8",
    },
  );
  assert.notEqual(res.status, 0, res.stdout + res.stderr);
  assert.match(res.stderr, /error: no space left on the device holding .*small; the partial ISO was removed/);
  assert.match(res.stdout, /^LEFT:\s*$/m, "nothing left on the full filesystem");
});

test("a rootfs overlay directory where the image has a symlink is refused, nothing left", async (t) => {
  const dir = await tempDir(t);
  const tar = join(dir, "rootfs.tar");
  await writeFixtureTar(tar, {
    extra: [
      {
        header: {
          path: "lib",
          type: "symlink",
          linkname: "usr/lib",
          mode: 0o777,
          uid: 0,
          gid: 0,
          size: 0,
          mtime: 0,
        },
      },
    ],
  });
  const overlay = join(dir, "overlay");
  mkdirSync(join(overlay, "lib", "firmware"), { recursive: true });
  writeFileSync(join(overlay, "lib", "firmware", "blob"), "x");
  const out = join(dir, "out");
  const res = kairos(["build", "iso", "--rootfs-tar", tar, "--overlay-rootfs", overlay, "-o", out]);
  assert.notEqual(res.status, 0);
  assert.match(
    res.stderr,
    /error: the rootfs overlay has a directory lib\/ where the image has a symlink \(lib -> usr\/lib\)/,
  );
  assert.deepEqual(readdirSync(out), []);
});

test("a truncated rootfs tar stops the build: tar2sqfs is killed, nothing is left", async (t) => {
  const dir = await tempDir(t);
  const tar = join(dir, "rootfs.tar");
  await writeFixtureTar(tar);
  const cut = join(dir, "cut.tar");
  writeFileSync(cut, readFileSync(tar).subarray(0, 3000));
  const out = join(dir, "out");
  const res = kairos(["build", "iso", "--rootfs-tar", cut, "-o", out]);
  assert.notEqual(res.status, 0);
  assert.match(res.stderr, /error: .*(truncated|ends)/);
  assert.deepEqual(readdirSync(out), []);
});
