/**
 * Fixtures for the initramfs boot tests: the default Debian base's rootfs tar, and from it a
 * kernel, our universal initramfs and a minimal COS_LIVE ISO holding rootfs.squashfs (plus a
 * marker unit that prints to the serial console at multi-user). Cached by input hash.
 */
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { mkdir, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { ensureDefaultBase } from "../../src/base/index.js";
import { buildInitramfsFromTar } from "../../src/factory/index.js";
import { run, start } from "../../src/sys/index.js";
import { readTar, type TarEntry, type WriteEntry, writeTar } from "../../src/tar/index.js";
import { fixtureKey, lockedFixture, publishFixture } from "../helpers/fixture.js";
import { testCacheDir } from "../helpers/qemu.js";

/** The rootfs tar of the default base (built on first use, cached), or $KAIROS_TEST_ROOTFS_TAR. */
export async function baseRootfsTar(): Promise<string> {
  if (process.env.KAIROS_TEST_ROOTFS_TAR) return process.env.KAIROS_TEST_ROOTFS_TAR;
  return (await ensureDefaultBase()).rootfsTar;
}

export const MARKER_UNIT = `[Unit]
Description=kairos-ts test: print a marker on the serial console at multi-user
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "KAIROS-TEST-BOOTED mode=$(cat /run/kairos-boot-mode) root=$(stat -f -c %%T /) live=$(ls /run/initramfs/live)" >/dev/ttyS0'

[Install]
WantedBy=multi-user.target
`;

export interface LiveFixture {
  kernel: string;
  initrd: string;
  iso: string;
  initrdBytes: number;
  modules: number;
  buildSeconds: number;
}

/** Build (or reuse) kernel + initrd + live ISO for the base at `tar`. */
export async function liveFixture(tar: string): Promise<LiveFixture> {
  const st = await stat(tar);
  const key = fixtureKey({
    inputs: { tar, size: st.size, mtime: st.mtimeMs },
    files: ["test/e2e/initramfs-fixture.ts"],
  });
  const dir = join(testCacheDir(), `initramfs-live-${key}`);
  const meta = join(dir, "fixture.json");
  const cached = () =>
    existsSync(meta) ? (JSON.parse(readFileSync(meta, "utf8")) as LiveFixture) : undefined;
  return lockedFixture(dir, cached, async () => {
    const t0 = Date.now();
    const tmp = `${dir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    await mkdir(join(tmp, "iso"), { recursive: true });
    try {
      const open = () => readTar(createReadStream(tar, { highWaterMark: 1 << 20 }));
      const r = await buildInitramfsFromTar(open, {});
      await writeFile(join(tmp, "initrd"), r.data);
      await writeFile(join(tmp, "vmlinuz"), r.kernelImage);

      // rootfs.squashfs: the base plus the marker unit, streamed into tar2sqfs.
      async function* entries(): AsyncGenerator<WriteEntry> {
        for await (const e of open() as AsyncIterable<TarEntry>) yield { header: e, body: e.body };
        const h = { uid: 0, gid: 0, mtime: 0 };
        const unit = Buffer.from(MARKER_UNIT);
        yield {
          header: {
            ...h,
            path: "etc/systemd/system/kairos-test-marker.service",
            type: "file",
            mode: 0o644,
            size: unit.length,
          },
          body: unit,
        };
        yield {
          header: {
            ...h,
            path: "etc/systemd/system/multi-user.target.wants/kairos-test-marker.service",
            type: "symlink",
            mode: 0o777,
            size: 0,
            linkname: "/etc/systemd/system/kairos-test-marker.service",
          },
        };
      }
      const sq = start("tar2sqfs", [
        "-q",
        "-f",
        "-c",
        "zstd",
        "-X",
        "level=3",
        "-b",
        "1048576",
        "-j",
        "2",
        join(tmp, "iso", "rootfs.squashfs"),
      ]);
      sq.stdout.resume();
      await Promise.all([pipeline(writeTar(entries()), sq.stdin), sq.done]);
      await run("xorriso", [
        "-as",
        "mkisofs",
        "-quiet",
        "-V",
        "COS_LIVE",
        "-o",
        join(tmp, "live.iso"),
        join(tmp, "iso"),
      ]);
      await rm(join(tmp, "iso"), { recursive: true });

      const fx: LiveFixture = {
        kernel: join(dir, "vmlinuz"),
        initrd: join(dir, "initrd"),
        iso: join(dir, "live.iso"),
        initrdBytes: r.data.length,
        modules: r.modules.length,
        buildSeconds: (Date.now() - t0) / 1000,
      };
      // Older fixtures (other inputs) are ~250 MB each: keep only this one.
      return await publishFixture(tmp, dir, fx, "initramfs-live-");
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  });
}
