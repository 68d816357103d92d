/**
 * The GRUB boot image cache (El Torito core image and ESP image) with the real tools: a miss
 * builds and publishes, a hit gives the same bytes as a fresh build, corrupt or half-written
 * entries are rebuilt, keys follow the inputs, concurrent builds share one directory safely.
 */
import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { bootImageKeys, bootImages, grubPlatformIdentity } from "../../src/artifacts/bootloader.js";
import { tempDir } from "../helpers/tmp.js";

let n = 0;
/** Build both images into a fresh work dir; returns the outputs and what was cached. */
async function images(
  dir: string,
  cacheDir: string | false,
  opts: { label?: string; espGrubCfg?: string } = {},
) {
  const work = join(dir, `w${n++}`);
  mkdirSync(work);
  const elt = join(work, "eltorito.img");
  const esp = join(work, "efiboot.img");
  const cached = await bootImages(work, elt, esp, { ...opts, cacheDir });
  return { cached, elt: readFileSync(elt), esp: readFileSync(esp) };
}

test("a miss fills the cache, a hit gives the bytes a fresh build makes", async (t) => {
  const dir = await tempDir(t);
  const cache = join(dir, "cache");
  const fresh = await images(dir, false);
  const miss = await images(dir, cache);
  assert.deepEqual(miss.cached, { bios: false, esp: false });
  const files = readdirSync(cache).sort();
  assert.equal(files.length, 4, files.join(" "));
  assert.match(
    files.join(" "),
    /^eltorito-[0-9a-f]{64}\.img eltorito-\S+\.img\.sha256 esp-[0-9a-f]{64}\.img esp-\S+\.sha256$/,
  );
  const hit = await images(dir, cache);
  assert.deepEqual(hit.cached, { bios: true, esp: true });
  for (const r of [miss, hit]) {
    assert.ok(r.elt.equals(fresh.elt), "El Torito image differs");
    assert.ok(r.esp.equals(fresh.esp), "ESP image differs");
  }
});

test("a corrupt entry or a missing checksum is rebuilt and repaired", async (t) => {
  const dir = await tempDir(t);
  const cache = join(dir, "cache");
  const good = await images(dir, cache);
  const [eltName, , espName] = readdirSync(cache).sort();
  // Flip a byte of the El Torito entry, drop the ESP's checksum.
  const eltPath = join(cache, eltName!);
  const bad = readFileSync(eltPath);
  bad[100] = bad[100]! ^ 0xff;
  writeFileSync(eltPath, bad);
  rmSync(join(cache, `${espName}.sha256`));
  const again = await images(dir, cache);
  assert.deepEqual(again.cached, { bios: false, esp: false });
  assert.ok(again.elt.equals(good.elt) && again.esp.equals(good.esp));
  assert.ok(readFileSync(eltPath).equals(good.elt), "the corrupt entry was replaced");
  // Truncated entry (a crash would leave it under a temp name, but be robust anyway).
  writeFileSync(eltPath, good.elt.subarray(0, 1000));
  const third = await images(dir, cache);
  assert.equal(third.cached.bios, false);
  assert.ok(third.elt.equals(good.elt));
  assert.deepEqual((await images(dir, cache)).cached, { bios: true, esp: true });
});

test("keys follow the inputs: label changes both, the ESP grub.cfg only the ESP's", async () => {
  const base = await bootImageKeys({ label: "COS_LIVE" });
  assert.deepEqual(await bootImageKeys({ label: "COS_LIVE" }), base, "stable");
  const label = await bootImageKeys({ label: "OTHER" });
  assert.notEqual(label.bios, base.bios);
  assert.notEqual(label.esp, base.esp);
  const cfg = await bootImageKeys({ label: "COS_LIVE", espGrubCfg: "set timeout=1\n" });
  assert.equal(cfg.bios, base.bios);
  assert.notEqual(cfg.esp, base.esp);
});

test("concurrent builds into one empty cache all get the right bytes and leave no temp files", async (t) => {
  const dir = await tempDir(t);
  const cache = join(dir, "cache");
  const fresh = await images(dir, false, { label: "CONC_TEST" });
  const all = await Promise.all([1, 2, 3, 4].map(() => images(dir, cache, { label: "CONC_TEST" })));
  for (const r of all) assert.ok(r.elt.equals(fresh.elt) && r.esp.equals(fresh.esp));
  assert.deepEqual(
    readdirSync(cache).filter((f) => f.startsWith(".")),
    [],
  );
  assert.equal(readdirSync(cache).length, 4);
});

test("platform identity covers the modules' dependency closure and the non-module files", async (t) => {
  const dir = await tempDir(t);
  writeFileSync(join(dir, "moddep.lst"), "normal: crypto extcmd\ncrypto:\nextcmd:\nunused: crypto\n");
  for (const f of ["normal.mod", "crypto.mod", "extcmd.mod", "unused.mod", "kernel.img"])
    writeFileSync(join(dir, f), f);
  const before = await grubPlatformIdentity(dir, ["normal"]);
  assert.deepEqual(
    before.slice(1).map((l) => l.split(" ")[0]),
    ["crypto.mod", "extcmd.mod", "kernel.img", "moddep.lst", "normal.mod"],
  );
  writeFileSync(join(dir, "unused.mod"), "changed, but not used");
  assert.deepEqual(await grubPlatformIdentity(dir, ["normal"]), before);
  writeFileSync(join(dir, "extcmd.mod"), "a dependency changed");
  assert.notDeepEqual(await grubPlatformIdentity(dir, ["normal"]), before);
  writeFileSync(join(dir, "kernel.img"), "a new kernel.img");
  const k = await grubPlatformIdentity(dir, ["normal"]);
  writeFileSync(join(dir, "moddep.lst"), "normal: crypto\ncrypto:\n");
  assert.notDeepEqual(await grubPlatformIdentity(dir, ["normal"]), k);
});
