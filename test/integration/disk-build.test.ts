/**
 * `kairos build disk` end to end on a small rootfs (fake kernel and initrd, the framework's
 * installed grub.cfg), as user nobody (no root, no loop devices): every format, each checked
 * by an independent tool (sgdisk -v, sfdisk --json, qemu-img info/check/compare, GRUB's own
 * filesystem drivers through grub-fstest, tar); the partitions hold what an installed node
 * holds (docs/lifecycle.md); same inputs and SOURCE_DATE_EPOCH give the same bytes; bad input
 * is refused before anything is written.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { tempDir } from "../helpers/tmp.js";

const REPO = resolve(import.meta.dirname, "../..");
const KAIROS = join(REPO, "bin/kairos");
const EPOCH = "1700000000";
const MIB = 1024 * 1024;
const CONFIG = "#cloud-config\nusers:\n  - name: kairos\n    passwd: kairos\n";

function sh(cmd: string, args: string[], opts: { input?: Buffer } = {}): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", input: opts.input, maxBuffer: 64 * MIB });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")} failed:\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

/** A small rootfs tarball that passes for a Kairos image: kernel, initrd, release, installed grub.cfg. */
function smallRootfs(dir: string): string {
  const root = join(dir, "rootfs");
  for (const d of ["boot", "etc/cos", "usr/bin"]) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, "boot/vmlinuz"), "fake kernel\n".repeat(1000));
  writeFileSync(join(root, "boot/initrd"), "fake initrd\n".repeat(1000));
  writeFileSync(join(root, "etc/kairos-release"), 'KAIROS_NAME="kairos-test"\nKAIROS_VERSION="v1.2.3"\n');
  copyFileSync(join(REPO, "framework/grub/grub.cfg"), join(root, "etc/cos/grub.cfg"));
  const tar = join(dir, "rootfs.tar");
  sh("tar", ["--owner=0", "--group=0", "--mtime=@1700000000", "-C", root, "-cf", tar, "."]);
  return tar;
}

/** Run `kairos build disk` as user nobody; returns the process result. */
function buildAsNobody(args: string[], epoch = EPOCH) {
  return spawnSync(
    "setpriv",
    ["--reuid", "65534", "--regid", "65534", "--clear-groups", KAIROS, "build", "disk", ...args],
    {
      encoding: "utf8",
      env: {
        ...process.env,
        HOME: "/nonexistent",
        TMPDIR: "/tmp",
        SOURCE_DATE_EPOCH: epoch,
        KAIROS_CACHE: "/nonexistent/cache",
      },
    },
  );
}

function sha256(file: string): string {
  return createHash("sha256").update(readFileSync(file)).digest("hex");
}

interface Part {
  node: string;
  start: number;
  size: number;
  type: string;
  uuid: string;
  name: string;
}

function partitions(disk: string): Part[] {
  return JSON.parse(sh("sfdisk", ["--json", disk])).partitiontable.partitions as Part[];
}

function extract(disk: string, p: Part, out: string): string {
  sh("dd", [`if=${disk}`, `of=${out}`, "bs=512", `skip=${p.start}`, `count=${p.size}`, "status=none"]);
  return out;
}

describe("kairos build disk, as an unprivileged user", { timeout: 20 * 60_000 }, async () => {
  it("every format builds as nobody; each checks out with independent tools", async (t) => {
    const dir = await tempDir(t);
    chmodSync(dir, 0o755);
    const tar = smallRootfs(dir);
    const cc = join(dir, "config.yaml");
    writeFileSync(cc, CONFIG);
    const out = join(dir, "out");
    mkdirSync(out);
    sh("chown", ["65534:65534", out]);
    const times: string[] = [];
    for (const format of ["raw", "qcow2", "vhd", "gce"]) {
      const t0 = Date.now();
      const b = buildAsNobody([
        "--rootfs-tar",
        tar,
        "--format",
        format,
        "--cloud-config",
        cc,
        "-o",
        out,
        "--name",
        `d-${format}`,
        "--json",
      ]);
      assert.equal(b.status, 0, `build --format ${format} as nobody failed:\n${b.stderr}`);
      times.push(`${format} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    console.log(`builds as nobody: ${times.join(", ")}`);
    assert.deepEqual(readdirSync(out).sort(), [
      "d-gce.raw.tar.gz",
      "d-qcow2.qcow2",
      "d-raw.raw",
      "d-vhd.vhd",
    ]);
    const raw = join(out, "d-raw.raw");
    const rawSize = readFileSync(raw).length;

    // The GPT, by two tools of their own.
    assert.match(sh("sgdisk", ["-v", raw]), /No problems found/);
    const parts = partitions(raw);
    assert.deepEqual(
      parts.map((p) => [p.name, p.type]),
      [
        ["bios", "21686148-6449-6E6F-744E-656564454649"],
        ["efi", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"],
        ["oem", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"],
        ["recovery", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"],
        ["state", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"],
        ["persistent", "0FC63DAF-8483-4772-8E79-3D69D8477DE4"],
      ],
    );
    const [bios, efi, oem, recovery, state, persistent] = parts as [Part, Part, Part, Part, Part, Part];
    for (const p of parts) assert.equal(p.start % 2048, 0, `${p.name} is 1 MiB-aligned`);

    // Filesystems: labels, fsck, and what GRUB (whose drivers boot the node) reads on them.
    const labels: string[] = [];
    for (const p of [efi, oem, recovery, state, persistent]) {
      const img = extract(raw, p, join(dir, `${p.name}.img`));
      labels.push(/LABEL="([^"]+)"/.exec(sh("blkid", [img]))?.[1] ?? "");
      if (p !== efi) sh("e2fsck", ["-fn", img]);
    }
    assert.deepEqual(labels, ["COS_GRUB", "COS_OEM", "COS_RECOVERY", "COS_STATE", "COS_PERSISTENT"]);
    const fst = (p: Part, ...args: string[]) => sh("grub-fstest", [join(dir, `${p.name}.img`), ...args]);
    assert.equal(fst(state, "cat", "/cOS/active/vmlinuz"), "fake kernel\n".repeat(1000));
    assert.equal(fst(state, "cat", "/cOS/passive/initrd"), "fake initrd\n".repeat(1000));
    assert.equal(
      fst(state, "cat", "/grub2/grub.cfg"),
      readFileSync(join(REPO, "framework/grub/grub.cfg"), "utf8"),
    );
    assert.equal(fst(recovery, "cat", "/cOS/recovery/vmlinuz"), "fake kernel\n".repeat(1000));
    const squash = fst(state, "cat", "/cOS/active.img");
    assert.equal(squash.slice(0, 4), "hsqs", "active.img is the squashfs");
    const slot = JSON.parse(
      fst(state, "cat", `/cOS/slots/${fst(state, "ls", "/cOS/slots/").trim().replace(/\/$/, "")}/slot.json`),
    );
    assert.equal(slot.version, "v1.2.3");
    assert.equal(fst(oem, "cat", "/90_custom.yaml"), CONFIG);
    const grubenv = fst(oem, "cat", "/grubenv");
    assert.equal(grubenv.length, 1024);
    assert.match(grubenv, /^# GRUB Environment Block\n#+$/);
    assert.match(sh("mdir", ["-i", join(dir, "efi.img"), "::/EFI/BOOT"]), /BOOTX64\s+EFI/);
    // Owners: root, though nobody built it.
    assert.match(
      sh("debugfs", ["-R", "stat /90_custom.yaml", join(dir, "oem.img")]),
      /User:\s+0\s+Group:\s+0/,
    );
    assert.match(sh("debugfs", ["-R", "stat /90_custom.yaml", join(dir, "oem.img")]), /Mode:\s+0600/);

    // BIOS: boot.img's code in the MBR pointing at core.img in the BIOS boot partition.
    const disk = readFileSync(raw);
    const bootImg = readFileSync("/usr/lib/grub/i386-pc/boot.img");
    assert.deepEqual(disk.subarray(0, 0x5c), bootImg.subarray(0, 0x5c));
    assert.equal(disk.readBigUInt64LE(0x5c), BigInt(bios.start));
    assert.equal(disk[0x1be + 4], 0xee, "protective MBR entry kept");
    const core = disk.subarray(bios.start * 512);
    assert.equal(core.readBigUInt64LE(500), BigInt(bios.start + 1));
    assert.ok(core.readUInt16LE(508) > 10 && core.readUInt16LE(508) < 2048, "core.img sector count");

    // qcow2: qemu-img's own check and the same guest-visible bytes as the raw disk.
    const qcow = join(out, "d-qcow2.qcow2");
    const qi = JSON.parse(sh("qemu-img", ["info", "--output=json", qcow]));
    assert.equal(qi.format, "qcow2");
    assert.equal(qi["virtual-size"], rawSize);
    sh("qemu-img", ["check", qcow]);
    sh("qemu-img", ["compare", "-f", "raw", "-F", "qcow2", raw, qcow]);

    // Fixed VHD, whole MiB (Azure), footer of a fixed disk, same bytes.
    const vhd = join(out, "d-vhd.vhd");
    const vi = JSON.parse(sh("qemu-img", ["info", "--output=json", "-f", "vpc", vhd]));
    assert.equal(vi["virtual-size"], rawSize);
    assert.equal(rawSize % MIB, 0);
    const v = readFileSync(vhd);
    assert.equal(v.length, rawSize + 512);
    const footer = v.subarray(v.length - 512);
    assert.equal(footer.toString("latin1", 0, 8), "conectix");
    assert.equal(footer.readUInt32BE(60), 2, "disk type: fixed");
    assert.equal(footer.readBigUInt64BE(48), BigInt(rawSize));
    let sum = 0;
    footer.forEach((b, i) => {
      if (i < 64 || i >= 68) sum += b;
    });
    assert.equal(footer.readUInt32BE(64), ~sum >>> 0, "footer checksum");
    sh("qemu-img", ["compare", "-f", "raw", "-F", "vpc", raw, vhd]);

    // GCE: a gzip'd GNU tar holding only disk.raw, stored sparse, with the raw disk's bytes.
    const gce = join(out, "d-gce.raw.tar.gz");
    assert.deepEqual(sh("tar", ["-tzf", gce]).trim().split("\n"), ["disk.raw"]);
    const header = spawnSync("sh", ["-c", `gzip -dc '${gce}' | head -c 512`], { maxBuffer: MIB })
      .stdout as Buffer;
    assert.equal(header.toString("latin1", 257, 265), "ustar  \0", "GNU (oldgnu) tar header");
    assert.equal(String.fromCharCode(header[156]!), "S", "stored as a sparse file");
    const x = join(dir, "gce-x");
    mkdirSync(x);
    sh("tar", ["-xzf", gce, "-C", x]);
    assert.equal(sha256(join(x, "disk.raw")), sha256(raw));
  });

  it("same inputs and SOURCE_DATE_EPOCH: the same bytes; another epoch: other GUIDs", async (t) => {
    const dir = await tempDir(t);
    chmodSync(dir, 0o755);
    const tar = smallRootfs(dir);
    const cc = join(dir, "config.yaml");
    writeFileSync(cc, CONFIG);
    const sums: Record<string, string[]> = {};
    for (const run of ["a", "b", "c"]) {
      const out = join(dir, run);
      mkdirSync(out);
      sh("chown", ["65534:65534", out]);
      for (const format of ["raw", "vhd", "gce"]) {
        const b = buildAsNobody(
          ["--rootfs-tar", tar, "--format", format, "--cloud-config", cc, "-o", out, "--name", "d"],
          run === "c" ? "1700000001" : EPOCH,
        );
        assert.equal(b.status, 0, b.stderr);
      }
      sums[run] = readdirSync(out)
        .sort()
        .map((f) => `${f} ${sha256(join(out, f))}`);
      // Let the wall clock move between builds.
      await new Promise((r) => setTimeout(r, 1100));
    }
    assert.deepEqual(sums.a, sums.b);
    assert.notDeepEqual(sums.a, sums.c);
    const ga = partitions(join(dir, "a/d.raw")).map((p) => p.uuid);
    const gc = partitions(join(dir, "c/d.raw")).map((p) => p.uuid);
    assert.notDeepEqual(ga, gc);
  });

  it("refuses bad input before writing anything", async (t) => {
    const dir = await tempDir(t);
    chmodSync(dir, 0o755);
    const tar = smallRootfs(dir);
    const out = join(dir, "out");
    mkdirSync(out);
    sh("chown", ["65534:65534", out]);
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "#cloud-config\nusers: 3\n");
    const cases: Array<[string[], RegExp]> = [
      [["--format", "vmdk"], /--format vmdk: not one of raw, qcow2, vhd, gce/],
      [["--boot", "uboot"], /--boot uboot: not one of efi, bios, hybrid/],
      [["--size", "lots"], /--size 'lots' is not a size/],
      [["--size", "100"], /too small for this layout: it needs at least \d+ MiB/],
      [["--state-size", "10"], /COS_STATE of 10 MiB cannot hold the system/],
      [["--cloud-config", bad], /bad\.yaml:2:\d+/],
    ];
    for (const [args, re] of cases) {
      const b = buildAsNobody(["--rootfs-tar", tar, "-o", out, ...args]);
      assert.notEqual(b.status, 0, `${args.join(" ")} was accepted`);
      assert.match(b.stderr, re, b.stderr);
    }
    // An image without the framework's installed grub.cfg.
    const plain = join(dir, "plain");
    mkdirSync(join(plain, "boot"), { recursive: true });
    writeFileSync(join(plain, "boot/vmlinuz"), "k");
    writeFileSync(join(plain, "boot/initrd"), "i");
    const ptar = join(dir, "plain.tar");
    sh("tar", ["-C", plain, "-cf", ptar, "."]);
    const b = buildAsNobody(["--rootfs-tar", ptar, "-o", out]);
    assert.notEqual(b.status, 0);
    assert.match(b.stderr, /no \/etc\/cos\/grub\.cfg/);
    assert.deepEqual(readdirSync(out), [], "nothing left in the output directory");
  });

  it("AuroraBoot's disk keys: disk.efi and disk.bios with disk.state_size, into state_dir", async (t) => {
    const dir = await tempDir(t);
    chmodSync(dir, 0o755);
    const tar = smallRootfs(dir);
    const state = join(dir, "state");
    mkdirSync(state);
    sh("chown", ["65534:65534", state]);
    const ab = (sets: string[]) =>
      spawnSync(
        "setpriv",
        [
          "--reuid",
          "65534",
          "--regid",
          "65534",
          "--clear-groups",
          KAIROS,
          "auroraboot",
          "--rootfs-tar",
          tar,
          ...sets.flatMap((x) => ["--set", x]),
        ],
        {
          encoding: "utf8",
          env: {
            ...process.env,
            HOME: "/nonexistent",
            TMPDIR: "/tmp",
            SOURCE_DATE_EPOCH: EPOCH,
            KAIROS_CACHE: "/nonexistent/cache",
          },
        },
      );
    const r = ab([
      "disable_http_server=true",
      "disable_netboot=true",
      `state_dir=${state}`,
      "disk.efi=true",
      "disk.bios=true",
      "disk.state_size=200",
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readdirSync(state).sort(), [
      "kairos-test-v1.2.3-bios.raw",
      "kairos-test-v1.2.3-efi.raw",
    ]);
    const efiDisk = join(state, "kairos-test-v1.2.3-efi.raw");
    const biosDisk = join(state, "kairos-test-v1.2.3-bios.raw");
    for (const d of [efiDisk, biosDisk]) {
      assert.match(sh("sgdisk", ["-v", d]), /No problems found/);
      assert.equal(partitions(d)[4]!.size * 512, 200 * MIB, "disk.state_size is COS_STATE's size");
    }
    // EFI only: no boot code in the MBR, BOOTX64.EFI on COS_GRUB; BIOS only: the reverse.
    assert.ok(
      readFileSync(efiDisk)
        .subarray(0, 440)
        .every((b) => b === 0),
    );
    assert.ok(
      !readFileSync(biosDisk)
        .subarray(0, 440)
        .every((b) => b === 0),
    );
    const esp = (d: string) => extract(d, partitions(d)[1]!, join(dir, "esp.img"));
    assert.match(sh("mdir", ["-i", esp(efiDisk), "::/EFI/BOOT"]), /BOOTX64\s+EFI/);
    assert.notEqual(spawnSync("mdir", ["-i", esp(biosDisk), "::/EFI/BOOT"]).status, 0);
    const stray = ab([`state_dir=${state}`, "disable_http_server=true", "disk.size=4000"]);
    assert.notEqual(stray.status, 0);
    assert.match(stray.stderr, /disk\.size given without a disk to build/);
  });
});
