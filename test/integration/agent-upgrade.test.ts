import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { lstat, mkdir, readdir, readFile, readlink, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it, type TestContext } from "node:test";
import {
  readGrubenv,
  resolveSlot,
  type UpgradeStep,
  updateGrubenv,
  upgradeSystem,
} from "../../src/agent/index.js";
import { openImage, writeImage } from "../../src/oci/index.js";
import { run } from "../../src/sys/index.js";
import { type LoopFs, loopExt4 } from "../helpers/loopfs.js";
import { tempDir } from "../helpers/tmp.js";

const repo = new URL("../..", import.meta.url).pathname;

/** A small Kairos-shaped rootfs (kernel, initrd, kairos-release, a setuid file, a symlink) as an OCI layout. */
async function kairosLayout(
  t: TestContext,
  version: string,
  opts: { noise?: number; release?: boolean } = {},
) {
  const dir = await tempDir(t, "kairos-upg-img-");
  const root = join(dir, "rootfs");
  await mkdir(join(root, "boot"), { recursive: true });
  await mkdir(join(root, "etc"), { recursive: true });
  await mkdir(join(root, "usr/bin"), { recursive: true });
  await writeFile(join(root, `boot/vmlinuz-6.1.0-${version}`), `kernel ${version}\n`);
  await symlink(`vmlinuz-6.1.0-${version}`, join(root, "boot/vmlinuz"));
  await writeFile(join(root, "boot/initrd"), `initrd ${version}\n`);
  if (opts.release !== false) {
    await writeFile(
      join(root, "etc/kairos-release"),
      `KAIROS_NAME="kairos-test"\nKAIROS_VERSION="${version}"\n`,
    );
  }
  await writeFile(join(root, "usr/bin/su"), "#!/bin/sh\n", { mode: 0o4755 });
  // Incompressible bytes so that the image has a real size on disk.
  await writeFile(join(root, "usr/bin/blob"), randomBytes(opts.noise ?? 4 << 20));
  const image = await openImage(`dir:${root}`);
  const layout = join(dir, "layout");
  await writeImage(image, `oci:${layout}:${version}`);
  await image.close();
  return `oci:${layout}:${version}`;
}

async function squashfsFile(img: string, path: string): Promise<string> {
  return (await run("rdsquashfs", ["-c", path, img])).stdout;
}

/** Both names resolve to complete slots whose system.img is a readable squashfs; returns their versions. */
async function assertBootablePair(cos: string): Promise<{ active: string; passive: string }> {
  const out: Record<string, string> = {};
  for (const name of ["active", "passive"] as const) {
    const s = await resolveSlot(cos, name);
    assert.ok(
      s,
      `${name} resolves to a complete slot (${await readlink(join(cos, name)).catch(() => "no link")})`,
    );
    const release = await squashfsFile(join(s.dir, "system.img"), "/etc/kairos-release");
    assert.match(release, new RegExp(`KAIROS_VERSION="${s.info.version}"`));
    assert.equal(await readFile(join(s.dir, "initrd"), "utf8"), `initrd ${s.info.version}\n`);
    assert.equal(await readFile(join(s.dir, "vmlinuz"), "utf8"), `kernel ${s.info.version}\n`);
    // Upstream's fixed path reaches the same image.
    assert.equal((await stat(join(cos, `${name}.img`))).ino, (await stat(join(s.dir, "system.img"))).ino);
    out[name] = s.info.version!;
  }
  return out as { active: string; passive: string };
}

async function installFirst(fs: LoopFs, source: string): Promise<{ cos: string; grubenv: string }> {
  const cos = join(fs.dir, "cOS");
  const grubenv = join(fs.dir, "grubenv");
  await mkdir(cos);
  await updateGrubenv(grubenv, { saved_entry: "cos" });
  await upgradeSystem({ cos, source, target: "active", grubenv });
  return { cos, grubenv };
}

function runChild(
  args: string[],
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(repo, "test/helpers/upgrade-child.ts"), ...args],
      {
        cwd: repo,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

describe("upgrade into slots on a real ext4 (loop device)", () => {
  it("installs, upgrades (new active, old passive, trial set), and a third upgrade drops the oldest slot", async (t) => {
    const fs = await loopExt4(t, 64);
    const v1 = await kairosLayout(t, "v1.0.0");
    const v2 = await kairosLayout(t, "v2.0.0");
    const v3 = await kairosLayout(t, "v3.0.0");
    const { cos, grubenv } = await installFirst(fs, v1);
    assert.deepEqual(await assertBootablePair(cos), { active: "v1.0.0", passive: "v1.0.0" });

    const steps: UpgradeStep[] = [];
    const r = await upgradeSystem({
      cos,
      source: v2,
      target: "active",
      grubenv,
      onStep: (s) => void steps.push(s),
    });
    assert.deepEqual(steps, ["checked", "written", "committed", "passive", "trial", "active", "cleaned"]);
    assert.equal(r.info.version, "v2.0.0");
    assert.match(r.info.digest ?? "", /^sha256:/);
    assert.equal(r.info.source, v2);
    await fs.remount();
    assert.deepEqual(await assertBootablePair(cos), { active: "v2.0.0", passive: "v1.0.0" });
    const env = await readGrubenv(grubenv);
    assert.equal(env.get("boot_assessment"), "trial");
    assert.equal(env.get("saved_entry"), "cos");

    // The image's setuid bit survives into the squashfs.
    const a = await resolveSlot(cos, "active");
    const ls = (await run("rdsquashfs", ["-s", "/usr/bin/su", join(a!.dir, "system.img")])).stdout;
    assert.match(ls, /[Pp]ermissions: .*0?4755|4755/);

    await upgradeSystem({ cos, source: v3, target: "active", grubenv });
    assert.deepEqual(await assertBootablePair(cos), { active: "v3.0.0", passive: "v2.0.0" });
    assert.equal((await readdir(join(cos, "slots"))).length, 2, "the v1 slot is gone");

    // v3 failed its boot assessment (GRUB set upgrade_failure, the node runs v2 from passive):
    // the next upgrade replaces only active, and passive stays on the system that works.
    await updateGrubenv(grubenv, { boot_assessment: undefined, upgrade_failure: "1" });
    const steps2: UpgradeStep[] = [];
    await upgradeSystem({ cos, source: v1, target: "active", grubenv, onStep: (s) => void steps2.push(s) });
    assert.deepEqual(steps2, ["checked", "written", "committed", "active", "trial", "cleaned"]);
    assert.deepEqual(await assertBootablePair(cos), { active: "v1.0.0", passive: "v2.0.0" });
    assert.equal((await readGrubenv(grubenv)).get("upgrade_failure"), undefined);
    assert.equal((await readGrubenv(grubenv)).get("boot_assessment"), "trial");
  });

  it("refuses before writing anything when the slot cannot fit, saying how much is missing", async (t) => {
    const fs = await loopExt4(t, 64);
    const v1 = await kairosLayout(t, "v1.0.0");
    const big = await kairosLayout(t, "v2.0.0", { noise: 40 << 20 });
    const { cos, grubenv } = await installFirst(fs, v1);
    const before = await readFile(grubenv);
    const slotsBefore = await readdir(join(cos, "slots"));
    await assert.rejects(
      upgradeSystem({ cos, source: big, target: "active", grubenv }),
      /not enough space for the new system image .*it needs [\d.]+ [KMG]i?B, [\d.]+ [KMG]i?B is free \([\d.]+ [KMG]i?B missing\)/,
    );
    assert.deepEqual(await readdir(join(cos, "slots")), slotsBefore);
    assert.deepEqual(await readFile(grubenv), before);
    assert.deepEqual(await assertBootablePair(cos), { active: "v1.0.0", passive: "v1.0.0" });
  });

  it("refuses an image without /etc/kairos-release and changes nothing", async (t) => {
    const fs = await loopExt4(t, 64);
    const v1 = await kairosLayout(t, "v1.0.0");
    const plain = await kairosLayout(t, "v2.0.0", { release: false });
    const { cos, grubenv } = await installFirst(fs, v1);
    const slotsBefore = await readdir(join(cos, "slots"));
    await assert.rejects(
      upgradeSystem({ cos, source: plain, target: "active", grubenv }),
      /is not a Kairos image/,
    );
    assert.deepEqual(await readdir(join(cos, "slots")), slotsBefore);
    assert.equal((await readGrubenv(grubenv)).get("boot_assessment"), undefined);
  });

  it("a crash (SIGKILL) at every step boundary and mid-stream leaves active and passive on complete slots", async (t) => {
    const fs = await loopExt4(t, 96);
    const v1 = await kairosLayout(t, "v1.0.0");
    const v2 = await kairosLayout(t, "v2.0.0", { noise: 12 << 20 });
    const { cos, grubenv } = await installFirst(fs, v1);
    const boundaries: UpgradeStep[] = [
      "checked",
      "written",
      "committed",
      "passive",
      "trial",
      "active",
      "cleaned",
    ];
    for (const step of boundaries) {
      const r = await runChild([cos, v2, grubenv, step]);
      assert.equal(r.signal, "SIGKILL", `child died at ${step}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`step ${step}\\n$`));
      const pair = await assertBootablePair(cos);
      // Up to the activation the old system stays active; from then on the new one is.
      const activated = boundaries.indexOf(step) >= boundaries.indexOf("active");
      assert.equal(pair.active, activated ? "v2.0.0" : "v1.0.0", `active after a crash at ${step}`);
      await readGrubenv(grubenv); // still a valid block
      // Next attempt starts from where we are: roll back to v1 active for the next crash point.
      if (activated) {
        await upgradeSystem({ cos, source: v1, target: "active", grubenv });
        assert.equal((await assertBootablePair(cos)).active, "v1.0.0");
      }
    }
    // Mid-stream: kill while system.img grows in the temp slot.
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(repo, "test/helpers/upgrade-child.ts"), cos, v2, grubenv, "none"],
      {
        cwd: repo,
        stdio: "ignore",
      },
    );
    const closed = new Promise((resolve) => child.on("close", resolve));
    let killed = false;
    for (let i = 0; i < 600 && !killed; i++) {
      const names = await readdir(join(cos, "slots")).catch(() => [] as string[]);
      for (const n of names.filter((x) => x.startsWith(".tmp-"))) {
        const st = await lstat(join(cos, "slots", n, "system.img")).catch(() => undefined);
        if (st && st.size > 0) {
          child.kill("SIGKILL");
          killed = true;
        }
      }
      if (!killed) await new Promise((r) => setTimeout(r, 20));
    }
    await closed;
    assert.ok(killed, "saw the image being written");
    assert.equal((await assertBootablePair(cos)).active, "v1.0.0");
    // The leftover temp slot is cleaned by the next upgrade, which then succeeds.
    await upgradeSystem({ cos, source: v2, target: "active", grubenv });
    assert.deepEqual(await assertBootablePair(cos), { active: "v2.0.0", passive: "v1.0.0" });
    assert.ok(!(await readdir(join(cos, "slots"))).some((n) => n.startsWith(".tmp-")));
    await fs.remount();
    assert.deepEqual(await assertBootablePair(cos), { active: "v2.0.0", passive: "v1.0.0" });
  });
});
