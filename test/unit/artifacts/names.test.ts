import assert from "node:assert/strict";
import { test } from "node:test";
import { xorrisoArgs } from "../../../src/artifacts/iso.js";
import { checkIsoName, isoNameFromRelease } from "../../../src/artifacts/live.js";
import { compareVersions, parseEnvFile } from "../../../src/artifacts/rootfs-files.js";
import { squashfsKeepsXattr } from "../../../src/artifacts/rootfs-stream.js";
import { tar2sqfsArgs } from "../../../src/artifacts/squashfs.js";

test("ISO name comes from kairos-release, else 'kairos'", () => {
  assert.equal(
    isoNameFromRelease({ KAIROS_NAME: "kairos-core-debian", KAIROS_VERSION: "v1.2.3" }),
    "kairos-core-debian-v1.2.3",
  );
  assert.equal(isoNameFromRelease({}), "kairos");
  assert.equal(isoNameFromRelease({ KAIROS_NAME: "../evil", KAIROS_VERSION: "x/y" }), "__evil-x_y");
});

test("ISO names that leave the output directory are refused", () => {
  for (const bad of ["", "a/b", "..", ".", "../x", "x\ny", ".iso"]) {
    assert.throws(() => checkIsoName(bad), /not a plain file name/, JSON.stringify(bad));
  }
  assert.equal(checkIsoName("kairos.iso"), "kairos");
  assert.equal(checkIsoName("my-os"), "my-os");
});

test("kernel versions sort numerically", () => {
  const v = ["6.1.0-9-amd64", "6.1.0-13-amd64", "5.10.0-1-amd64"].sort(compareVersions);
  assert.deepEqual(v, ["5.10.0-1-amd64", "6.1.0-9-amd64", "6.1.0-13-amd64"]);
});

test("env files parse with quotes", () => {
  assert.deepEqual(parseEnvFile("KAIROS_NAME=\"kairos-core\"\nKAIROS_VERSION=v1\n# c\nBAD LINE\nX='a b'\n"), {
    KAIROS_NAME: "kairos-core",
    KAIROS_VERSION: "v1",
    X: "a b",
  });
});

test("tar2sqfs gets zstd level, block size and jobs; bad values are refused", () => {
  const a = tar2sqfsArgs("/o.sqfs");
  assert.deepEqual(a.slice(0, 8), [
    "--compressor",
    "zstd",
    "--comp-extra",
    "level=3",
    "--block-size",
    "1048576",
    "--num-jobs",
    "2",
  ]);
  assert.ok(a.includes("--no-skip"));
  assert.equal(a.at(-1), "/o.sqfs");
  assert.throws(() => tar2sqfsArgs("/o", { level: 0 }), /out of range/);
  assert.throws(() => tar2sqfsArgs("/o", { level: 23 }), /out of range/);
  assert.throws(() => tar2sqfsArgs("/o", { blockSize: 3000 }), /invalid/);
});

test("squashfs keeps user/trusted/security xattrs only", () => {
  assert.ok(squashfsKeepsXattr("security.capability"));
  assert.ok(squashfsKeepsXattr("user.foo"));
  assert.ok(!squashfsKeepsXattr("system.posix_acl_access"));
});

test("xorriso gets a hybrid layout: COS_LIVE, El Torito BIOS + appended EFI partition, grafts", () => {
  const a = xorrisoArgs({
    out: "/o.iso",
    label: "COS_LIVE",
    mbr: "/mbr",
    efiImage: "/efi.img",
    roots: ["/tree"],
    grafts: { "/boot/kernel": "/k", "/rootfs.squashfs": "/s=x" },
  });
  const s = a.join(" ");
  assert.match(s, /-V COS_LIVE/);
  assert.match(s, /--grub2-mbr \/mbr/);
  assert.match(s, /-append_partition 2 C12A7328-F81F-11D2-BA4B-00A0C93EC93B \/efi.img -appended_part_as_gpt/);
  assert.match(
    s,
    /-b \/boot\/grub\/i386-pc\/eltorito.img -no-emul-boot -boot-load-size 4 -boot-info-table --grub2-boot-info/,
  );
  assert.match(s, /-eltorito-alt-boot -e --interval:appended_partition_2:all:: -no-emul-boot/);
  assert.ok(a.includes("/=/tree"));
  assert.ok(a.includes("/boot/kernel=/k"));
  assert.ok(a.includes("/rootfs.squashfs=/s\\=x"), "= in host paths is escaped");
});
