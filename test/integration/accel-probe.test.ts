/**
 * The KVM probe and the fail-fast boot watch, with real QEMU guests under software emulation,
 * so they run on machines with and without /dev/kvm: a guest that never prints (a multiboot
 * kernel that halts) stands in for "KVM runs the firmware, then the kernel hangs"; the default
 * base's own kernel shows that a guest that does start passes. The "KVM device" is a temp file
 * here, so the probe is reached whatever the host has.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createReadStream, existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { bootIsoHeadless, chooseAccel, probeKvm } from "../../src/artifacts/index.js";
import { readTar } from "../../src/tar/index.js";
import { baseRootfsTar } from "../e2e/initramfs-fixture.js";
import { silentKernel, withQemuLock } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";

async function silentSetup(dir: string) {
  const kernel = join(dir, "silent.bin");
  writeFileSync(kernel, silentKernel());
  const device = join(dir, "fake-kvm");
  writeFileSync(device, "");
  return { kernel, device, cacheDir: join(dir, "cache") };
}

test("a guest that never prints: no KVM, one line, cached per host boot and QEMU version", async (t) => {
  const dir = await tempDir(t);
  const s = await silentSetup(dir);
  let kernelAsked = 0;
  const opts = {
    kernel: async () => {
      kernelAsked++;
      return s.kernel;
    },
    device: s.device,
    cacheDir: s.cacheDir,
    probeAccel: "tcg" as const,
    timeoutMs: 3000,
    bootId: "boot-1",
  };
  const first = await withQemuLock(() => probeKvm(opts));
  assert.equal(first.usable, false);
  assert.equal(first.source, "probe");
  assert.match(first.reason, /printed nothing on the serial console in 3 s/);
  assert.ok(first.seconds >= 3 && first.seconds < 10, `probe took ${first.seconds} s`);
  const cached = JSON.parse(readFileSync(join(s.cacheDir, "kvm-probe.json"), "utf8"));
  assert.equal(cached.bootId, "boot-1");
  assert.match(cached.qemu, /^QEMU emulator version /);

  // Same host boot: the cached verdict, no guest, no kernel needed.
  const t0 = Date.now();
  const again = await probeKvm(opts);
  assert.equal(again.source, "cache");
  assert.equal(again.usable, false);
  assert.ok(Date.now() - t0 < 2000);
  assert.equal(kernelAsked, 1);

  // chooseAccel turns it into TCG with one line saying why and where the verdict is kept.
  const c = await chooseAccel("auto", opts);
  assert.equal(c.accel, "tcg");
  assert.match(
    c.note ?? "",
    /^KVM not used: a Linux kernel under -accel tcg printed nothing .*kvm-probe\.json.*--accel kvm/,
  );
  assert.doesNotMatch(c.note ?? "", /\n/);

  // Another host boot probes again.
  const next = await withQemuLock(() => probeKvm({ ...opts, bootId: "boot-2" }));
  assert.equal(next.source, "probe");
  assert.equal(kernelAsked, 2);
});

test("a kernel that starts passes the probe (the default base's kernel, no initrd)", async (t) => {
  const dir = await tempDir(t);
  const tar = await baseRootfsTar();
  const kernel = join(dir, "vmlinuz");
  for await (const e of readTar(createReadStream(tar, { highWaterMark: 1 << 20 }))) {
    if (/^(\.\/)?boot\/vmlinuz-/.test(e.path) && e.type === "file") {
      const parts: Buffer[] = [];
      for await (const c of e.body) parts.push(Buffer.from(c));
      await writeFile(kernel, Buffer.concat(parts));
    } else for await (const _ of e.body);
  }
  assert.ok(existsSync(kernel), "no boot/vmlinuz-* in the base");
  const device = join(dir, "fake-kvm");
  writeFileSync(device, "");
  // Under TCG the kernel needs ~7-17 s to reach the root mount here; KVM takes ~1-2 s.
  const v = await withQemuLock(() =>
    probeKvm({ kernel: async () => kernel, device, cacheDir: false, probeAccel: "tcg", timeoutMs: 90_000 }),
  );
  assert.equal(v.usable, true, v.reason);
  assert.equal(v.source, "probe");
  console.log(`base kernel reached the root mount under TCG in ${v.seconds.toFixed(1)} s`);
});

test("a headless boot whose KVM probe never prints falls back to TCG, and a silent guest fails fast", async (t) => {
  const dir = await tempDir(t);
  const s = await silentSetup(dir);
  // An ISO with no boot record: SeaBIOS finds nothing to boot and the serial console stays empty.
  await mkdir(join(dir, "tree"));
  await writeFile(join(dir, "tree", "README"), "not bootable\n");
  const iso = join(dir, "silent.iso");
  execFileSync("xorriso", ["-as", "mkisofs", "-quiet", "-V", "SILENT", "-o", iso, join(dir, "tree")], {
    stdio: "ignore",
  });
  const notes: string[] = [];
  let afterStart = Number.NaN;
  await assert.rejects(
    bootIsoHeadless({
      iso,
      accel: "auto",
      onNote: (l) => notes.push(l),
      probe: {
        kernel: async () => s.kernel,
        device: s.device,
        cacheDir: s.cacheDir,
        probeAccel: "tcg",
        timeoutMs: 3000,
      },
      watch: { silenceMs: 4000 },
      timeoutMs: 600_000,
    }),
    (e: Error & { hint?: string }) => {
      const m =
        /the guest printed nothing for 4 s \((\d+) s after start, -accel tcg\); the console printed nothing/.exec(
          e.message,
        );
      assert.ok(m, e.message);
      afterStart = Number(m[1]);
      assert.match(e.hint ?? "", /--accel kvm/);
      return true;
    },
  );
  // Counted from QEMU's start (not from the wait for the shared QEMU lock): the silence bound, not the 600 s timeout.
  assert.ok(afterStart >= 4 && afterStart < 30, `gave up ${afterStart} s after start`);
  assert.equal(notes.length, 1);
  assert.match(notes[0]!, /^KVM not used: .*printed nothing/);
});

test("kairos build iso refuses a bad --accel or $KAIROS_ACCEL before building anything", async (t) => {
  const dir = await tempDir(t);
  const kairos = join(import.meta.dirname, "../../bin/kairos");
  const out = join(dir, "out");
  const cases: [string[], NodeJS.ProcessEnv, RegExp][] = [
    [["--boot", "--accel", "fast"], {}, /--accel 'fast': not an accelerator \(auto, kvm or tcg\)/],
    [["--boot"], { KAIROS_ACCEL: "fast" }, /KAIROS_ACCEL 'fast': not an accelerator/],
    [["--accel", "tcg"], {}, /--accel only applies to --boot/],
  ];
  for (const [args, env, want] of cases) {
    const r = spawnSync(
      kairos,
      ["build", "iso", "--rootfs-tar", join(dir, "missing.tar"), "-o", out, ...args],
      {
        encoding: "utf8",
        env: { ...process.env, ...env },
      },
    );
    assert.notEqual(r.status, 0, args.join(" "));
    assert.match(r.stderr, want);
    assert.ok(!existsSync(out), "nothing written");
  }
});
