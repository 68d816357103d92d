/**
 * Crash the upgrade at random instants (SIGKILL of the agent process, no cleanup) and count how
 * often both `active` and `passive` still resolve to complete slots whose squashfs reads —
 * process-level cuts on a real ext4 on a loop device, N points (default 24) spread at random
 * over the measured duration of one upgrade. Goal: all. (Cuts of the whole machine are the
 * e2e's, test/e2e/lifecycle-upgrade.test.ts; this is the long matrix it leaves out.)
 *
 *   node --import tsx bench/lifecycle-powercut.ts [--points N]
 *
 * With `--qemu`: cuts of the whole machine instead — a copy of the installed-disk fixture under
 * QEMU TCG (UEFI) upgrades to v2 from a local registry at every boot, and QEMU is killed
 * (SIGKILL, no shutdown) at a random instant of that upgrade; the next boot must reach
 * multi-user as active or passive and run the driver, which is also the start of the next cut.
 * One boot per point (~3 min under TCG), so N=20 is about an hour.
 *
 *   node --import tsx bench/lifecycle-powercut.ts --qemu [--points N]
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, symlink, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveSlot, updateGrubenv, upgradeSystem } from "../src/agent/index.js";
import { openImage, writeImage } from "../src/oci/index.js";
import { run } from "../src/sys/index.js";
import { installedDiskFixture } from "../test/e2e/lifecycle-fixture.js";
import {
  attach,
  bootDriven,
  field,
  GUEST_REGISTRY,
  pushKairosImage,
  slots,
} from "../test/e2e/node-driver.js";
import { startRegistry } from "../test/helpers/registry.js";

const points = Number(process.argv[process.argv.indexOf("--points") + 1] || 24) || 24;
const REPO = new URL("..", import.meta.url).pathname;

async function layout(dir: string, version: string, noise: number): Promise<string> {
  const root = join(dir, `rootfs-${version}`);
  await mkdir(join(root, "boot"), { recursive: true });
  await mkdir(join(root, "etc"), { recursive: true });
  await writeFile(join(root, "boot/vmlinuz-6.1"), `kernel ${version}\n`);
  await symlink("vmlinuz-6.1", join(root, "boot/vmlinuz"));
  await writeFile(join(root, "boot/initrd"), `initrd ${version}\n`);
  await writeFile(join(root, "etc/kairos-release"), `KAIROS_VERSION="${version}"\n`);
  for (let i = 0; i < 8; i++) await writeFile(join(root, `blob${i}`), randomBytes(noise / 8));
  const image = await openImage(`dir:${root}`);
  const ref = `oci:${join(dir, "layout")}:${version}`;
  await writeImage(image, ref);
  await image.close();
  return ref;
}

function child(
  args: string[],
  killAfterMs?: number,
): Promise<{ killed: boolean; ms: number; steps: Map<string, number> }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const steps = new Map<string, number>();
    const c = spawn(
      process.execPath,
      ["--import", "tsx", join(REPO, "test/helpers/upgrade-child.ts"), ...args],
      {
        cwd: REPO,
        stdio: ["ignore", "pipe", "ignore"],
      },
    );
    c.stdout.on("data", (d: Buffer) => {
      for (const m of d.toString().matchAll(/step (\w+)/g)) steps.set(m[1]!, Date.now() - t0);
    });
    let killed = false;
    const timer =
      killAfterMs === undefined
        ? undefined
        : setTimeout(() => {
            killed = c.kill("SIGKILL");
          }, killAfterMs);
    c.on("close", (_code, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ killed: killed && signal === "SIGKILL", ms: Date.now() - t0, steps });
    });
  });
}

async function bootable(cos: string): Promise<string | undefined> {
  for (const name of ["active", "passive"] as const) {
    const s = await resolveSlot(cos, name);
    if (!s) return `${name} does not resolve`;
    const r = await run("rdsquashfs", ["-c", "/etc/kairos-release", join(s.dir, "system.img")]).catch(
      (e: Error) => e,
    );
    if (r instanceof Error || !r.stdout.includes(s.info.version ?? "?"))
      return `${name}: squashfs unreadable`;
    if ((await readFile(join(s.dir, "vmlinuz"), "utf8")) !== `kernel ${s.info.version}\n`)
      return `${name}: vmlinuz`;
  }
  return undefined;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), "kairos-bench-powercut-"));
  const img = join(work, "fs.img");
  const mnt = join(work, "mnt");
  let device = "";
  try {
    await writeFile(img, "");
    await truncate(img, 512 * 1024 * 1024);
    await run("mkfs.ext4", ["-q", "-F", "-m", "0", "-L", "KTS_BENCH", img]);
    device = (await run("losetup", ["-f", "--show", img])).stdout.trim();
    await mkdir(mnt);
    await run("mount", [device, mnt]);
    const v1 = await layout(work, "v1", 96 << 20);
    const v2 = await layout(work, "v2", 96 << 20);
    const cos = join(mnt, "cOS");
    const grubenv = join(mnt, "grubenv");
    await updateGrubenv(grubenv, {});
    await upgradeSystem({ cos, source: v1, target: "active", grubenv });
    const full = await child([cos, v2, grubenv, "none"]);
    await upgradeSystem({ cos, source: v1, target: "active", grubenv });
    // Cut between the moment the agent starts working (its first step, after the loader's
    // start-up, minus a margin) and its end: start-up itself touches nothing.
    const from = Math.max(0, (full.steps.get("checked") ?? 0) - 200);
    console.log(
      `one upgrade: ${full.ms} ms (steps at ${JSON.stringify(Object.fromEntries(full.steps))}); ${points} cuts at random instants in [${from}, ${full.ms}] ms`,
    );
    let ok = 0;
    const failures: string[] = [];
    for (let i = 0; i < points; i++) {
      const at = from + Math.floor(Math.random() * (full.ms - from));
      const r = await child([cos, v2, grubenv, "none"], at);
      const bad = await bootable(cos);
      const active = (await resolveSlot(cos, "active"))?.info.version;
      console.log(
        `cut ${i + 1} at ${at} ms: ${r.killed ? "killed" : "finished first"}, active ${active}: ${bad ?? "both bootable"}`,
      );
      if (bad) failures.push(`${at} ms: ${bad}`);
      else ok++;
      if (active === "v2") await upgradeSystem({ cos, source: v1, target: "active", grubenv });
    }
    console.log(
      `${ok}/${points} came back with two bootable names${failures.length ? `; failures: ${failures.join("; ")}` : ""}`,
    );
  } finally {
    // A killed agent's tar2sqfs may still hold its output open for a moment: lazy unmount then.
    await run("umount", [mnt]).catch(() => run("umount", ["-l", mnt]).catch(() => {}));
    if (device) await run("losetup", ["-d", device]).catch(() => {});
    await rm(work, { recursive: true, force: true });
  }
}

/** Whole-machine cuts: one boot per point; each boot checks the previous cut and makes the next. */
async function qemuCuts(): Promise<void> {
  const work = await mkdtemp(join("/var/tmp", "kairos-bench-powercut-qemu-"));
  const reg = await startRegistry();
  try {
    const [fx] = await Promise.all([
      installedDiskFixture(),
      pushKairosImage(join(work, "images"), reg, "v2", "v2.0.0-e2e"),
    ]);
    const raw = join(work, "disk.raw");
    await run("cp", ["--sparse=always", "--reflink=auto", fx.disk, raw]);
    const disk = await attach(raw, join(work, "mnt"));
    const script = `upgrade oci:${GUEST_REGISTRY}/kairos-e2e:v2\nsystemctl poweroff\n`;
    const MIN = 60_000;
    // The first boot lets its upgrade finish: its duration is the window the cuts fall in.
    let window = 0;
    let ok = 0;
    const failures: string[] = [];
    // Boot 0 lets its upgrade finish (the window); boot i (1..points) is cut at a random instant
    // of its upgrade; boot i + 1 shows whether cut i came back. points cuts, points + 2 boots.
    for (let i = 0; i <= points + 1; i++) {
      const vm = await bootDriven({ disk, workDir: join(work, `b${i}`), reg, script });
      try {
        const up = await vm.waitFor(/E2E UP [^\r\n]*/, 15 * MIN).catch((e: Error) => e);
        if (up instanceof Error) {
          failures.push(`boot after cut ${i - 1}: ${up.message.split("\n")[0]}`);
          break;
        }
        const mode = field(up.match, "boot");
        if (i > 1) {
          if (/^(active|passive)_boot$/.test(mode)) ok++;
          else failures.push(`boot after cut ${i - 1}: ${mode}`);
          console.log(
            `boot after cut ${i - 1}: ${mode} ${field(up.match, "version")} (up after ${up.seconds.toFixed(0)}s)`,
          );
        }
        if (i === points + 1) break;
        const checked = await vm.waitFor("upgrade: checked", 20 * MIN);
        if (i === 0) {
          const done = await vm.waitFor(/E2E UPGRADE rc=\d+[^\r\n]*/, 40 * MIN);
          window = (done.seconds - checked.seconds) * 1000;
          console.log(
            `one upgrade under TCG: ${(window / 1000).toFixed(0)} s from "checked"; ${points} cuts in it`,
          );
          continue;
        }
        const at = Math.floor(Math.random() * window);
        await new Promise((r) => setTimeout(r, at));
        const last = vm
          .log()
          .match(/upgrade: [a-z]+|Upgrade completed/g)
          ?.slice(-1)[0];
        console.log(`cut ${i} ${(at / 1000).toFixed(1)} s after "checked" (last line seen: ${last})`);
      } finally {
        await vm.stop();
      }
      await disk.withPartitions(async ({ state }) =>
        console.log(`  on disk: ${JSON.stringify(await slots(state))}`),
      );
    }
    console.log(
      `${ok}/${points} whole-machine cuts came back to a working system${failures.length ? `; failures: ${failures.join("; ")}` : ""}`,
    );
  } finally {
    await reg.stop();
    await rm(work, { recursive: true, force: true });
  }
}

if (process.argv.includes("--qemu")) await qemuCuts();
else await main();
