/**
 * ISO build benchmark, all in one run (ratios only mean something within a run on this
 * shared host). From the default base image as an oci-archive:
 *
 *   ours    `kairos build iso oci-archive:… --no-init` (stream → tar2sqfs → xorriso)
 *   staged  what a user would script: extract the archive, `umoci unpack`, `mksquashfs`
 *           (zstd 3, 1 MiB blocks, 2 threads: the same compression), xorriso
 *   floor   `mksquashfs` of an already unpacked tree + xorriso
 *
 * Both baselines use the same xorriso arguments and prebuilt GRUB images (built untimed; ours
 * builds its own inside the timing). Usage: node --import tsx bench/iso.ts [rounds=1]
 */
import { mkdir, mkdtemp, realpath, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { biosHybridMbr, buildBiosEltorito, buildEfiImage, xorrisoArgs } from "../src/artifacts/index.js";
import { ensureDefaultBase } from "../src/base/index.js";
import { best, report, sum, type Timing, timed } from "./lib.js";

const rounds = Number(process.argv[2] ?? 1);
const KAIROS = resolve(import.meta.dirname, "../bin/kairos");
const base = await ensureDefaultBase();
const work = await mkdtemp(join(tmpdir(), "kairos-bench-iso-"));
console.log(`default base: ${base.archiveRef}\nwork dir: ${work}\nrounds: ${rounds}`);

try {
  // Boot loader images for the baselines' xorriso step.
  const tree = join(work, "tree");
  await mkdir(join(tree, "boot/grub/i386-pc"), { recursive: true });
  await buildBiosEltorito(work, join(tree, "boot/grub/i386-pc/eltorito.img"));
  const efi = join(work, "efiboot.img");
  await buildEfiImage(work, efi);

  const xorriso = async (sq: string, rootfs: string, out: string) => {
    return xorrisoArgs({
      out,
      label: "COS_LIVE",
      mbr: biosHybridMbr(),
      efiImage: efi,
      roots: [tree],
      grafts: {
        // Debian's /vmlinuz and /initrd.img are relative symlinks: graft their targets.
        "/boot/kernel": await realpath(join(rootfs, "vmlinuz")),
        "/boot/initrd": await realpath(join(rootfs, "initrd.img")),
        "/rootfs.squashfs": sq,
      },
    });
  };
  const mksquashfs = (dir: string, out: string) => [
    dir,
    out,
    "-comp",
    "zstd",
    "-Xcompression-level",
    "3",
    "-b",
    "1M",
    "-processors",
    "2",
    "-noappend",
    "-quiet",
    "-no-progress",
  ];

  const ours: Timing[] = [];
  const staged: Timing[] = [];
  const floor: Timing[] = [];
  for (let i = 0; i < rounds; i++) {
    // ours
    const o = join(work, `ours-${i}`);
    ours.push(
      await timed(KAIROS, ["-q", "build", "iso", base.archiveRef, "--no-init", "--name", "bench", "-o", o]),
    );
    await rm(o, { recursive: true, force: true });

    // staged: oci-archive → layout → umoci unpack → mksquashfs → xorriso
    const s = join(work, `staged-${i}`);
    await mkdir(join(s, "layout"), { recursive: true });
    const t1 = await timed("tar", ["-xf", base.ociArchive, "-C", join(s, "layout")]);
    const t2 = await timed("umoci", ["unpack", "--image", `${join(s, "layout")}:latest`, join(s, "bundle")]);
    const rootfs = join(s, "bundle", "rootfs");
    const t3 = await timed("mksquashfs", mksquashfs(rootfs, join(s, "rootfs.squashfs")));
    const t4 = await timed(
      "xorriso",
      await xorriso(join(s, "rootfs.squashfs"), rootfs, join(s, "staged.iso")),
    );
    staged.push(sum(t1, t2, t3, t4));

    // floor: the tree is already unpacked (from the staged run)
    const f3 = await timed("mksquashfs", mksquashfs(rootfs, join(s, "floor.squashfs")));
    const f4 = await timed("xorriso", await xorriso(join(s, "floor.squashfs"), rootfs, join(s, "floor.iso")));
    floor.push(sum(f3, f4));
    console.log(
      `round ${i + 1}: ours ${ours[i]!.seconds.toFixed(1)} s, staged ${staged[i]!.seconds.toFixed(1)} s ` +
        `(extract ${t1.seconds.toFixed(1)}, umoci ${t2.seconds.toFixed(1)}, mksquashfs ${t3.seconds.toFixed(1)}, xorriso ${t4.seconds.toFixed(1)}), ` +
        `floor ${floor[i]!.seconds.toFixed(1)} s`,
    );
    await rm(s, { recursive: true, force: true });
  }
  console.log("");
  report("ISO build vs staged pipeline", best(ours), best(staged), "umoci+mksquashfs+xorriso", 0.7);
  report("ISO build vs floor", best(ours), best(floor), "mksquashfs(unpacked)+xorriso", 1.15);
  const rss = Math.max(...ours.map((t) => t.maxRssMiB));
  console.log(
    `peak RSS of our build: ${rss.toFixed(0)} MiB (goal ≤ 200 MiB: ${rss <= 200 ? "met" : "NOT met"})`,
  );
} finally {
  await rm(work, { recursive: true, force: true });
}
