import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  DirectoryView,
  type DoctorReport,
  doctor,
  formatReport,
  type RootfsView,
} from "../../../src/factory/index.js";
import {
  alpineTree,
  DEB_KVER,
  debianTree,
  FED_KVER,
  fedoraTree,
  makeDir,
  makeTarView,
  opensuseTree,
  SUSE_KVER,
  type TreeSpec,
  UBU_KVER,
  ubuntuTree,
} from "./trees.js";

/** Run doctor on the tree both as a directory and as a tar stream; both must agree. */
async function check(spec: TreeSpec): Promise<DoctorReport> {
  const d = await makeDir(spec);
  try {
    const fromDir = await doctor(new DirectoryView(d.root));
    const fromTar = await doctor(await makeTarView(spec));
    assert.deepEqual(fromTar, fromDir, "directory and tar views disagree");
    return fromDir;
  } finally {
    await d.cleanup();
  }
}

const finding = (r: DoctorReport, id: string) => {
  const f = r.findings.find((x) => x.id === id);
  assert.ok(f, `no finding ${id} in ${JSON.stringify(r.findings.map((x) => x.id))}`);
  return f;
};

function without(spec: TreeSpec, ...paths: string[]): TreeSpec {
  const files = { ...spec.files };
  const symlinks = { ...spec.symlinks };
  for (const p of paths) {
    delete files[p];
    delete symlinks[p];
  }
  return { ...spec, files, symlinks };
}

describe("doctor on family-shaped trees", () => {
  for (const [name, tree, kver, family] of [
    ["debian", debianTree, DEB_KVER, "debian"],
    ["ubuntu", ubuntuTree, UBU_KVER, "ubuntu"],
    ["fedora", fedoraTree, FED_KVER, "fedora"],
    ["opensuse", opensuseTree, SUSE_KVER, "opensuse"],
  ] as const) {
    it(`accepts a complete ${name} tree`, async () => {
      const r = await check(tree());
      assert.equal(r.ok, true, formatReport(r));
      assert.equal(r.family, family);
      assert.equal(r.kernel?.version, kver);
      assert.ok(
        r.findings.every((f) => f.severity === "ok"),
        formatReport(r),
      );
    });
  }

  it("finds Debian's kernel modules through the /lib -> usr/lib symlink", async () => {
    const r = await check(debianTree());
    assert.equal(r.kernel?.modulesDir, `/usr/lib/modules/${DEB_KVER}`);
    assert.equal(r.kernel?.image, `/boot/vmlinuz-${DEB_KVER}`);
  });
});

describe("doctor names problems and fixes", () => {
  it("no kernel", async () => {
    const r = await check(without(debianTree(), `/boot/vmlinuz-${DEB_KVER}`));
    assert.equal(r.ok, false);
    const f = finding(r, "kernel");
    assert.equal(f.severity, "fail");
    assert.match(f.message, /no kernel/);
    assert.equal(f.fix, "apt-get install linux-image-amd64");
  });

  it("two kernels", async () => {
    const spec = debianTree();
    spec.files!["/boot/vmlinuz-6.1.0-27-amd64"] = "older";
    const r = await check(spec);
    assert.equal(r.ok, false);
    assert.match(finding(r, "kernel").message, /2 kernels/);
  });

  it("modules for another kernel version", async () => {
    const spec = without(
      debianTree(),
      `/usr/lib/modules/${DEB_KVER}/modules.dep`,
      `/usr/lib/modules/${DEB_KVER}/kernel/fs/squashfs/squashfs.ko`,
    );
    spec.files!["/usr/lib/modules/6.1.0-99-amd64/modules.dep"] = "";
    const r = await check(spec);
    assert.equal(r.ok, false);
    const f = finding(r, "kernel-modules");
    assert.match(
      f.message,
      /6\.1\.0-28-amd64 has no modules directory \(found modules for 6\.1\.0-99-amd64\)/,
    );
  });

  it("missing modules.dep", async () => {
    const r = await check(without(debianTree(), `/usr/lib/modules/${DEB_KVER}/modules.dep`));
    assert.equal(r.ok, false);
    assert.equal(finding(r, "modules.dep").fix, `run 'depmod -a ${DEB_KVER}' in the image`);
  });

  it("musl-based base (Alpine) with OpenRC/busybox init", async () => {
    const r = await check(alpineTree());
    assert.equal(r.ok, false);
    assert.equal(r.family, "alpine");
    assert.match(finding(r, "libc").message, /musl/);
    assert.match(finding(r, "libc").fix!, /not supported/);
    assert.match(finding(r, "init").message, /busybox init is not supported yet/);
    assert.equal(finding(r, "tool:mkfs.ext4").fix, "apk add e2fsprogs");
  });

  it("missing os-release", async () => {
    const r = await check(without(debianTree(), "/etc/os-release", "/usr/lib/os-release"));
    assert.equal(r.ok, false);
    assert.match(finding(r, "os-release").message, /no \/etc\/os-release/);
  });

  it("malformed os-release names file:line:col", async () => {
    const spec = debianTree();
    spec.files!["/usr/lib/os-release"] = 'NAME="Debian"\nID=debian\nPRETTY_NAME="unterminated\n';
    const r = await check(spec);
    assert.equal(r.ok, false);
    assert.match(finding(r, "os-release").message, /\/etc\/os-release:3:13: unterminated " quote/);
  });

  it("os-release without ID", async () => {
    const spec = debianTree();
    spec.files!["/usr/lib/os-release"] = 'NAME="Something"\n';
    const r = await check(spec);
    assert.equal(r.ok, false);
    assert.match(finding(r, "os-release").message, /has no ID/);
  });

  it("other init systems are not supported yet", async () => {
    const spec = without(debianTree(), "/usr/sbin/init", "/usr/lib/systemd/systemd");
    spec.symlinks!["/usr/sbin/init"] = "openrc-init";
    spec.files!["/usr/sbin/openrc-init"] = "openrc";
    const r = await check(spec);
    assert.equal(r.ok, false);
    assert.equal(finding(r, "init").message, "init system OpenRC is not supported yet");
  });

  it("missing tools name the family's package", async () => {
    const deb = await check(without(debianTree(), "/usr/sbin/mkfs.ext4", "/usr/bin/partx"));
    assert.equal(deb.ok, false);
    assert.equal(finding(deb, "tool:mkfs.ext4").fix, "apt-get install e2fsprogs");
    assert.equal(finding(deb, "tool:partx").fix, "apt-get install util-linux");
    const fed = await check(without(fedoraTree(), "/usr/bin/mksquashfs"));
    assert.equal(finding(fed, "tool:squashfs-tools").fix, "dnf install squashfs-tools");
    const alpine = await check(without(alpineTree(), "/usr/bin/partx"));
    assert.equal(finding(alpine, "tool:partx").fix, "apk add util-linux-misc");
  });

  it("parted's partprobe does instead of partx; neither sgdisk nor parted is needed", async () => {
    const spec = without(debianTree(), "/usr/bin/partx");
    spec.files!["/usr/sbin/partprobe"] = "p";
    assert.equal((await check(spec)).ok, true);
  });

  it("soft requirements warn but do not fail", async () => {
    const r = await check(without(debianTree(), "/usr/bin/rsync", "/usr/bin/sudo"));
    assert.equal(r.ok, true);
    assert.equal(finding(r, "tool:rsync").severity, "warn");
    assert.match(formatReport(r), /OK: the image meets the contract \(2 warnings\)/);
  });

  it("no grub EFI nor BIOS fails; only one of them warns", async () => {
    const noEfi = await check(without(debianTree(), "/usr/lib/grub/x86_64-efi/normal.mod"));
    assert.equal(noEfi.ok, true);
    assert.equal(finding(noEfi, "grub-efi").severity, "warn");
    const none = await check(
      without(debianTree(), "/usr/lib/grub/x86_64-efi/normal.mod", "/usr/lib/grub/i386-pc/normal.mod"),
    );
    assert.equal(none.ok, false);
    assert.equal(finding(none, "grub-efi").fix, "apt-get install grub-efi-amd64-bin");
  });

  it("ssh host keys baked in are reported", async () => {
    const spec = debianTree();
    spec.files!["/etc/ssh/ssh_host_ed25519_key"] = "secret";
    const r = await check(spec);
    assert.equal(finding(r, "ssh-host-keys").severity, "warn");
    assert.match(finding(r, "ssh-host-keys").message, /ssh_host_ed25519_key/);
  });

  it("no glibc loader", async () => {
    const r = await check(without(debianTree(), "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"));
    assert.equal(r.ok, false);
    assert.equal(finding(r, "libc").fix, "apt-get install libc6");
  });

  it("report renders why and fix for failures", async () => {
    const r = await check(without(debianTree(), `/boot/vmlinuz-${DEB_KVER}`));
    const text = formatReport(r, "test");
    assert.match(text, /✖ kernel: no kernel in \/boot/);
    assert.match(text, /why: the image must carry its own kernel/);
    assert.match(text, /NOT OK: 1 requirement failed/);
  });
});

describe("rootfs views stay inside the root", () => {
  it("absolute and .. symlinks resolve inside the rootfs", async () => {
    const spec: TreeSpec = {
      symlinks: {
        "/etc/evil": "../../../../etc",
        "/etc/abs": "/etc/passwd-in-root",
        "/loop1": "loop2",
        "/loop2": "loop1",
      },
      files: { "/etc/passwd-in-root": "inside" },
    };
    const d = await makeDir(spec);
    try {
      for (const view of [new DirectoryView(d.root), await makeTarView(spec)] as RootfsView[]) {
        assert.equal(await view.realpath("/etc/evil"), "/etc");
        assert.deepEqual(await view.list("/etc/evil"), ["abs", "evil", "passwd-in-root"]);
        assert.equal((await view.readFile("/etc/abs"))?.toString(), "inside");
        assert.equal(await view.readFile("/etc/evil/../../hostname"), undefined);
        assert.equal(await view.exists("/loop1"), false);
        assert.equal(await view.readlink("/etc/abs"), "/etc/passwd-in-root");
      }
    } finally {
      await d.cleanup();
    }
  });
});
