/**
 * Fixtures for the ISO boot tests: a live ISO built by `buildIso` from the default base's rootfs
 * tar, with the factory's universal initramfs as /boot/initrd and a test-only marker unit added
 * through the rootfs overlay (AuroraBoot's iso.overlay_rootfs), and a cloud-config embedded as
 * /config.yaml. Cached under $KAIROS_CACHE/test/ by a hash of every input.
 */
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { chmod, mkdir, rm, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildIso, rootfsFromTarFile } from "../../src/artifacts/index.js";
import { buildInitramfsFromTar } from "../../src/factory/index.js";
import { readTar } from "../../src/tar/index.js";
import { fixtureKey, lockedFixture, publishFixture } from "../helpers/fixture.js";
import { testCacheDir } from "../helpers/qemu.js";

/** A oneshot unit after multi-user.target that reports what the live system sees. */
export const ISO_MARKER_UNIT = `[Unit]
Description=kairos-ts ISO test: report the live boot on the serial console
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "KAIROS-ISO-BOOTED root=$(stat -f -c %%T /) medium=$(ls /run/initramfs/live | tr "\\\\n" ,) config=$(head -c 13 /run/initramfs/live/config.yaml 2>/dev/null || echo none) cmdline=$(cat /proc/cmdline | tr " " ,)" >/dev/ttyS0'

[Install]
WantedBy=multi-user.target
`;

export const ISO_CLOUD_CONFIG = `#cloud-config
users:
  - name: kairos
    passwd: kairos
    ssh_authorized_keys:
      - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKairosTsTestKeyOnlyForTheE2eTestsXXXXXXXXX kairos-ts-e2e
stages:
  boot:
    - name: e2e marker
      commands:
        - echo "KAIROS-STAGE-BOOT-RAN" > /dev/ttyS0
`;

export interface IsoFixture {
  iso: string;
  /** The overlay directory (boot/initrd + marker unit), for builds the tests run themselves. */
  overlay: string;
  cloudConfig: string;
  buildSeconds: number;
}

/** Build (or reuse) the live ISO for the base rootfs tar at `tar`. */
export async function isoFixture(tar: string): Promise<IsoFixture> {
  const st = await stat(tar);
  const key = fixtureKey({
    inputs: { tar, size: st.size, mtime: st.mtimeMs },
    files: ["test/e2e/iso-fixture.ts"],
  });
  const dir = join(testCacheDir(), `iso-live-${key}`);
  const meta = join(dir, "fixture.json");
  const cached = () =>
    existsSync(meta) ? (JSON.parse(readFileSync(meta, "utf8")) as IsoFixture) : undefined;
  return lockedFixture(dir, cached, async () => {
    const t0 = Date.now();
    const tmp = `${dir}.tmp-${process.pid}`;
    await rm(tmp, { recursive: true, force: true });
    const overlay = join(tmp, "overlay");
    await mkdir(join(overlay, "boot"), { recursive: true });
    await mkdir(join(overlay, "etc", "systemd", "system", "multi-user.target.wants"), { recursive: true });
    try {
      const open = () => readTar(createReadStream(tar, { highWaterMark: 1 << 20 }));
      const initramfs = await buildInitramfsFromTar(open, {});
      await writeFile(join(overlay, "boot", "initrd"), initramfs.data);
      await writeFile(
        join(overlay, "etc", "systemd", "system", "kairos-test-marker.service"),
        ISO_MARKER_UNIT,
      );
      await symlink(
        "/etc/systemd/system/kairos-test-marker.service",
        join(overlay, "etc", "systemd", "system", "multi-user.target.wants", "kairos-test-marker.service"),
      );
      const cc = join(tmp, "config.yaml");
      await writeFile(cc, ISO_CLOUD_CONFIG);
      await buildIso({
        rootfs: await rootfsFromTarFile(tar),
        outDir: tmp,
        name: "live",
        cloudConfigFile: cc,
        overlayRootfs: overlay,
        grub: { timeout: 1 },
      });
      const final = {
        iso: join(dir, "live.iso"),
        overlay: join(dir, "overlay"),
        cloudConfig: join(dir, "config.yaml"),
        buildSeconds: (Date.now() - t0) / 1000,
      };
      // Readable by the unprivileged build test.
      for (const p of [tmp, overlay, cc]) await chmod(p, 0o755);
      // Older fixtures (other inputs) are ~250 MB each: keep only this one.
      return await publishFixture(tmp, dir, final, "iso-live-");
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
  });
}
