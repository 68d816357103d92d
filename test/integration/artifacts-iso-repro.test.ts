/**
 * Reproducible ISOs with the real tools (grub-mkimage, mkfs.vfat, mtools, xorriso): the same
 * inputs and source date epoch give the same bytes, whatever the work directory, the umask or
 * the wall clock; another epoch gives another image. Cross-checked with xorriso's PVD report,
 * mtools' directory listing of the ESP and sgdisk.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { appendFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { buildEfiImage } from "../../src/artifacts/bootloader.js";
import { assembleIso, type IsoInputs, writeChecksum } from "../../src/artifacts/iso.js";
import { tempDir } from "../helpers/tmp.js";

const EPOCH = 1700000000; // 2023-11-14T22:13:20Z

function sh(cmd: string, args: string[], env?: NodeJS.ProcessEnv): string {
  return execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], env });
}

/** Build an ISO from small fake boot files in a fresh work directory under `dir`. */
async function build(
  dir: string,
  name: string,
  sourceDateEpoch?: number,
  grubCache: string | false = false,
  more: Partial<IsoInputs> = {},
): Promise<string> {
  const work = join(dir, name);
  mkdirSync(work);
  writeFileSync(join(work, "kernel"), "FAKE-KERNEL\n");
  writeFileSync(join(work, "initrd"), "FAKE-INITRD\n");
  writeFileSync(join(work, "rootfs.squashfs"), Buffer.alloc(300_000, 0x5a));
  const out = join(work, "out.iso");
  const r = await assembleIso({
    kernel: join(work, "kernel"),
    initrd: join(work, "initrd"),
    squashfs: join(work, "rootfs.squashfs"),
    cloudConfig: "#cloud-config\nhostname: repro\n",
    workDir: work,
    out,
    sourceDateEpoch,
    grubCache,
    ...more,
  });
  // The returned checksum and size are the file's.
  assert.equal(r.sha256, sh("sha256sum", [out]).split(" ")[0]);
  assert.equal(r.size, statSync(out).size);
  return out;
}

test("same inputs and epoch give a byte-identical ISO (other work dir, umask and time)", async (t) => {
  const dir = await tempDir(t);
  const a = await build(dir, "a", EPOCH);
  await new Promise((r) => setTimeout(r, 2100)); // FAT and ISO dates have 2 s / 1 s resolution
  const old = process.umask(0o077);
  let b: string;
  try {
    b = await build(dir, "b-other-dir", EPOCH);
  } finally {
    process.umask(old);
  }
  assert.ok(readFileSync(a).equals(readFileSync(b)), "ISOs differ");
  // Boot images from the cache (first a miss that fills it, then a hit) change nothing.
  const cache = join(dir, "grub-cache");
  for (const n of ["c-cache-miss", "d-cache-hit"]) {
    assert.ok(readFileSync(a).equals(readFileSync(await build(dir, n, EPOCH, cache))), `${n}: ISOs differ`);
  }

  // The volume dates are the epoch, GPT is valid, every file is root's with the epoch's date.
  const pvd = sh("xorriso", ["-indev", a, "-pvd_info"]);
  assert.match(pvd, /Creation Time: 2023111422132000/);
  assert.match(pvd, /Modif\. Time {2}: 2023111422132000/);
  assert.match(sh("sgdisk", ["-v", a]), /No problems found/);
  const ls = sh("xorriso", ["-indev", a, "-find", "/", "-exec", "lsdl"], { ...process.env, TZ: "UTC" });
  const entries = ls.split("\n").filter((l) => /^[-de]/.test(l));
  assert.ok(entries.length >= 10, ls);
  for (const l of entries) assert.match(l, /^\S+\s+1 0\s+0\s+\d+ Nov 14\s+2023 '/, l);
  for (const l of entries.filter((e) => e.startsWith("-"))) assert.match(l, /^-rw-r--r-- /, l);
});

test("another epoch, from SOURCE_DATE_EPOCH, gives another ISO with that date", async (t) => {
  const dir = await tempDir(t);
  const a = await build(dir, "a", EPOCH);
  const saved = process.env.SOURCE_DATE_EPOCH;
  process.env.SOURCE_DATE_EPOCH = "1600000000"; // 2020-09-13T12:26:40Z
  let b: string;
  try {
    b = await build(dir, "b");
  } finally {
    if (saved === undefined) delete process.env.SOURCE_DATE_EPOCH;
    else process.env.SOURCE_DATE_EPOCH = saved;
  }
  assert.ok(!readFileSync(a).equals(readFileSync(b)), "ISOs with different epochs are equal");
  assert.match(sh("xorriso", ["-indev", b, "-pvd_info"]), /Creation Time: 2020091312264000/);
  const gptA = sh("sgdisk", ["-p", a]).match(/Disk identifier \(GUID\): (\S+)/)?.[1];
  const gptB = sh("sgdisk", ["-p", b]).match(/Disk identifier \(GUID\): (\S+)/)?.[1];
  assert.ok(gptA && gptB && gptA !== gptB, `${gptA} vs ${gptB}`);
});

test("the ESP image is byte-identical across builds; its files carry FAT's first day", async (t) => {
  const dir = await tempDir(t);
  const imgs: string[] = [];
  for (const n of ["a", "b"]) {
    const w = join(dir, n);
    mkdirSync(w);
    await buildEfiImage(w, join(w, "esp.img"), { grubCfg: "set timeout=1\n" });
    imgs.push(join(w, "esp.img"));
    await new Promise((r) => setTimeout(r, 2100));
  }
  assert.ok(readFileSync(imgs[0]!).equals(readFileSync(imgs[1]!)), "ESP images differ");
  const env = { ...process.env, MTOOLS_SKIP_CHECK: "1" };
  const listing = sh("mdir", ["-i", imgs[0]!, "::/EFI/BOOT"], env);
  assert.match(listing, /BOOTX64\s+EFI\s+\d+ 1980-01-01\s+0:00/);
  assert.match(listing, /grub\s+cfg\s+\d+ 1980-01-01\s+0:00/i);
});

test("the ISO piped through the hash is the ISO xorriso writes to a file", async (t) => {
  const dir = await tempDir(t);
  const piped = await build(dir, "piped", EPOCH);
  const file = await build(dir, "file", EPOCH, false, { xorrisoWritesFile: true });
  assert.ok(readFileSync(piped).equals(readFileSync(file)), "piped and file ISOs differ");
  // Independent readers agree on the hybrid layout.
  const report = (iso: string) => sh("xorriso", ["-indev", iso, "-report_el_torito", "as_mkisofs"]);
  const r = report(piped);
  assert.equal(r, report(file).replaceAll(file, piped));
  assert.match(r, /-append_partition 2 28732ac11ff8d211ba4b00a0c93ec93b /);
  assert.match(r, /--modification-date=.2023111422132000/);
  assert.match(r, /-b '\/boot\/grub\/i386-pc\/eltorito.img'/);
  assert.match(r, /--grub2-mbr/);
  assert.match(sh("sgdisk", ["-v", piped]), /No problems found/);
});

test("a failing xorriso behind the pipe fails the build with its message", async (t) => {
  const dir = await tempDir(t);
  await assert.rejects(
    build(dir, "bad", EPOCH, false, { kernel: join(dir, "no-such-kernel") }),
    (err: Error) => /xorriso/.test(err.message) && /no-such-kernel/.test(err.message),
  );
});

test("writeChecksum reads the file unless given the hash taken while writing", async (t) => {
  const dir = await tempDir(t);
  const iso = await build(dir, "a", EPOCH);
  const sum = sh("sha256sum", [iso]).split(" ")[0]!;
  assert.equal(await writeChecksum(iso), sum);
  assert.equal(readFileSync(`${iso}.sha256`, "utf8"), `${sum}  out.iso\n`);
  const iso2 = await build(dir, "b", EPOCH);
  appendFileSync(iso2, "changed after assembleIso");
  const sum2 = sh("sha256sum", [iso2]).split(" ")[0]!;
  assert.notEqual(sum2, sum);
  assert.equal(await writeChecksum(iso2), sum2);
  assert.equal(
    await writeChecksum(iso2, `${iso2}.x`, "f".repeat(64)),
    "f".repeat(64),
    "a given hash is used",
  );
});
