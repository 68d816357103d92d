/**
 * The seed's Dockerfile steps, by hand, in a chroot on the default base (shared by the
 * integration test and the dracut boot test): flatten the base, `COPY --from=<framework> / /`,
 * the osbuilder identity, `systemctl enable` the cos-setup units, Debian's dracut with our
 * module, /boot/vmlinuz and /boot/initrd links.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { ensureDefaultBase } from "../../src/base/index.js";
import { ensureAgent, exportFramework, identityFiles } from "../../src/factory/index.js";
import { flattenToDirectory } from "../../src/oci/flatten.js";
import { openImage } from "../../src/oci/index.js";
import { run } from "../../src/sys/index.js";

/** Run a shell snippet inside the chroot. */
export const inChroot = (root: string, script: string) =>
  run("chroot", [root, "/bin/sh", "-ec", script], {
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", LANG: "C" },
  });

export interface SeedResult {
  root: string;
  kernelVersion: string;
  dracutSeconds: number;
  /** `lsinitrd` of the dracut initrd. */
  lsinitrd: string;
}

/** Build the seed's image as a directory `work/rootfs` (needs root). */
export async function seedPathRootfs(work: string): Promise<SeedResult> {
  const root = join(work, "rootfs");
  const base = await openImage((await ensureDefaultBase({})).ref);
  try {
    await flattenToDirectory(base, root);
  } finally {
    await base.close();
  }

  // COPY --from=<framework> / /
  const fwRef = `oci-archive:${join(work, "framework.tar")}:latest`;
  await exportFramework(fwRef, { agent: await ensureAgent(false) });
  const fw = await openImage(fwRef);
  try {
    await flattenToDirectory(fw, root);
  } finally {
    await fw.close();
  }
  await run("rm", ["-f", join(work, "framework.tar")]);

  // The osbuilder stage: KAIROS_* identity into os-release.
  const osText = await readFile(join(root, "etc/os-release"), "utf8");
  const ids = identityFiles(osText, {
    osName: "kairos-core-debian",
    osVersion: "v9.9.9",
    osLabel: "latest",
    variant: "core",
    flavor: "debian",
  });
  await run("rm", ["-f", join(root, "etc/os-release")]);
  await writeFile(join(root, "etc/os-release"), ids.osRelease);

  // RUN systemctl enable …
  await inChroot(
    root,
    "systemctl enable cos-setup-reconcile.timer && systemctl enable cos-setup-fs.service && systemctl enable cos-setup-boot.service && systemctl enable cos-setup-network.service",
  );

  // Debian packages dracut (dracut-core): fetched with the host's apt, installed with dpkg in the chroot.
  const debs = join(root, "tmp/debs");
  await run("mkdir", ["-p", debs]);
  await run("apt-get", ["download", "-q", "dracut-core", "kpartx"], { cwd: debs });
  await inChroot(root, "dpkg -i /tmp/debs/*.deb >/dev/null && rm -rf /tmp/debs");

  // RUN the seed's initrd steps (dracut needs /proc, /sys and /dev).
  const mounts = ["proc", "sys", "dev"];
  try {
    await run("mount", ["-t", "proc", "proc", join(root, "proc")]);
    await run("mount", ["--rbind", "/sys", join(root, "sys")]);
    await run("mount", ["--rbind", "/dev", join(root, "dev")]);
    const t0 = Date.now();
    await inChroot(
      root,
      [
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, verbatim from the seed
        'kernel=$(ls /boot/vmlinuz-* | head -n1) && ln -sf "${kernel#/boot/}" /boot/vmlinuz',
        // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion, verbatim from the seed
        'kernel=$(ls /lib/modules | head -n1) && dracut -q -N -f "/boot/initrd-${kernel}" "${kernel}" && ln -sf "initrd-${kernel}" /boot/initrd && depmod -a "${kernel}"',
        "rm -rf /boot/initramfs-*",
      ].join("\n"),
    );
    const dracutSeconds = (Date.now() - t0) / 1000;
    const kernelVersion = (await inChroot(root, "ls /lib/modules | head -n1")).stdout.trim();
    const ls = await inChroot(root, `lsinitrd /boot/initrd-${kernelVersion}`);
    return { root, kernelVersion, dracutSeconds, lsinitrd: ls.stdout };
  } finally {
    for (const m of mounts.reverse()) {
      await run("umount", ["-R", "-l", join(root, m)]).catch(() => {});
    }
  }
}
