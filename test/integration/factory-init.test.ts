/**
 * kairos doctor / init / framework export against the real default base (Debian bookworm
 * made by mmdebstrap, cached), real OCI archives (cross-checked with skopeo) and the real
 * single-executable agent (scripts/build-agent, cached).
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { promisify } from "node:util";
import { ensureDefaultBase } from "../../src/base/index.js";
import { doctor, ensureAgent, imageView, ModuleSpill, parseOsRelease } from "../../src/factory/index.js";
import { openImage } from "../../src/oci/index.js";
import { KairosError, run } from "../../src/sys/index.js";
import { tempDir } from "../helpers/tmp.js";
import { alpineTree, DEB_KVER, debianTree, makeDir, type TreeSpec } from "../unit/factory/trees.js";

const KAIROS = join(import.meta.dirname, "../../bin/kairos");

async function kairos(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(KAIROS, args, {
      env: { ...process.env, KAIROS_DEBUG: "", ...env },
      maxBuffer: 64 << 20,
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe("kairos doctor / init on the default base", { timeout: 20 * 60_000 }, () => {
  let baseRef: string;
  let agent: string;
  before(async () => {
    baseRef = (await ensureDefaultBase({})).ref;
    agent = await ensureAgent(false);
  });

  it("doctor accepts the default base (text and --json)", async () => {
    const text = await kairos(["doctor", baseRef]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /OK: the image meets the contract/);
    const json = await kairos(["--json", "--quiet", "doctor", baseRef]);
    assert.equal(json.code, 0, json.stderr);
    const report = JSON.parse(json.stdout);
    assert.equal(report.ok, true);
    assert.equal(report.family, "debian");
    assert.match(report.kernel.version, /^6\.1\.0-\d+-amd64$/);
  });

  it("init writes the base's layers untouched plus one framework layer; the result passes doctor", async (t) => {
    const dir = await tempDir(t);
    const out = `oci-archive:${join(dir, "kairos.tar")}:v1`;
    const t0 = Date.now();
    const r = await kairos([
      "--json",
      "init",
      baseRef,
      "-o",
      out,
      "--os-version",
      "v1.2.3",
      "--os-repo",
      "quay.io/example/kairos-debian",
      "--agent",
      agent,
    ]);
    const seconds = (Date.now() - t0) / 1000;
    assert.equal(r.code, 0, r.stderr);
    const res = JSON.parse(r.stdout);
    console.log(
      `kairos init: ${seconds.toFixed(1)}s, initramfs ${(res.initramfs.bytes / 1e6).toFixed(2)} MB, ${res.initramfs.modules.length} modules`,
    );
    assert.ok(res.initramfs.bytes < 12 * 1024 * 1024);

    const base = await openImage(baseRef);
    const img = await openImage(out);
    try {
      const bl = (await base.layers()).map((l) => l.digest);
      const il = (await img.layers()).map((l) => l.digest);
      assert.equal(il.length, bl.length + 1);
      assert.deepEqual(il.slice(0, bl.length), bl, "base layers are reused byte for byte");
      const cfg = await img.config();
      assert.equal(cfg.config?.Labels?.["io.kairos.version"], "v1.2.3");

      // skopeo reads what we wrote.
      const sk = JSON.parse((await run("skopeo", ["inspect", out])).stdout);
      assert.equal(sk.Layers.length, il.length);

      const view = await imageView(img);
      const report = await doctor(view);
      assert.equal(report.ok, true);
      const os = parseOsRelease((await view.readFile("/etc/os-release"))!.toString());
      assert.equal(os.get("ID"), "debian");
      assert.equal(os.get("KAIROS_VERSION"), "v1.2.3");
      assert.equal(os.get("KAIROS_IMAGE_REPO"), "quay.io/example/kairos-debian");
      assert.equal(os.get("KAIROS_FLAVOR"), "debian");
      assert.ok(await view.exists("/etc/kairos-release"));
      assert.equal(await view.realpath("/boot/initrd"), `/boot/initrd-${report.kernel!.version}`);
      assert.equal(await view.realpath("/boot/vmlinuz"), `/boot/vmlinuz-${report.kernel!.version}`);
      assert.equal((await view.lstat("/usr/bin/kairos-agent"))?.mode, 0o755);
      for (const u of [
        "sysinit.target.wants/cos-setup-fs.service",
        "multi-user.target.wants/cos-setup-boot.service",
        "timers.target.wants/cos-setup-reconcile.timer",
      ]) {
        assert.ok(await view.exists(`/etc/systemd/system/${u}`), u);
      }
      assert.ok(await view.exists("/usr/lib/dracut/modules.d/30kairos/module-setup.sh"));
      assert.deepEqual(
        (await view.list("/etc/ssh")).filter((n) => n.startsWith("ssh_host_")),
        [],
      );
    } finally {
      await base.close();
      await img.close();
    }
  });
});

describe("kairos init refuses bad bases and writes nothing", { timeout: 5 * 60_000 }, () => {
  const cases: [string, () => TreeSpec, RegExp, string[]?][] = [
    [
      "no kernel",
      () => {
        const s = debianTree();
        delete s.files![`/boot/vmlinuz-${DEB_KVER}`];
        return s;
      },
      /does not meet the Kairos contract: kernel: no kernel in \/boot/,
    ],
    [
      "two kernels",
      () => {
        const s = debianTree();
        s.files!["/boot/vmlinuz-6.1.0-99-amd64"] = "k";
        return s;
      },
      /kernel: 2 kernels/,
    ],
    [
      "modules for another kernel version",
      () => {
        const s = debianTree();
        delete s.files![`/usr/lib/modules/${DEB_KVER}/modules.dep`];
        delete s.files![`/usr/lib/modules/${DEB_KVER}/kernel/fs/squashfs/squashfs.ko`];
        s.files!["/usr/lib/modules/6.1.0-99-amd64/modules.dep"] = "";
        return s;
      },
      /kernel-modules: kernel 6\.1\.0-28-amd64 has no modules directory \(found modules for 6\.1\.0-99-amd64\)/,
    ],
    ["a musl-based base", alpineTree, /libc: musl libc base/],
    [
      "a malformed os-release",
      () => {
        const s = debianTree();
        s.files!["/usr/lib/os-release"] = 'ID=debian\nNAME="Debian\n';
        return s;
      },
      /os-release: malformed os-release: \/etc\/os-release:2:6: unterminated " quote/,
    ],
    [
      "a missing os-release",
      () => {
        const s = debianTree();
        delete s.symlinks!["/etc/os-release"];
        delete s.files!["/usr/lib/os-release"];
        return s;
      },
      /os-release: no \/etc\/os-release/,
    ],
    ["an invalid identity option", debianTree, /OS_ID 'Not Valid' is not valid/, ["--os-id", "Not Valid"]],
  ];
  for (const [name, spec, msg, extra] of cases) {
    it(name, async (t) => {
      const d = await makeDir(spec());
      t.after(d.cleanup);
      const out = await tempDir(t);
      const r = await kairos([
        "--quiet",
        "init",
        `dir:${d.root}`,
        "-o",
        `oci-archive:${join(out, "x.tar")}`,
        "--agent",
        "/nonexistent",
        ...(extra ?? []),
      ]);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, msg);
      assert.match(r.stderr, /^error: .*\nhint: /m);
      assert.deepEqual(await readdir(out), [], "nothing written");
    });
  }

  it("doctor exits 1 on a bad base and names the fix", async (t) => {
    const d = await makeDir(alpineTree());
    t.after(d.cleanup);
    const r = await kairos(["doctor", `dir:${d.root}`]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /✖ init: init system busybox init is not supported yet/);
    assert.match(r.stdout, /fix: apk add e2fsprogs/);
    const direct = await kairos(["doctor", d.root]);
    assert.equal(direct.code, 1);
    assert.equal(
      direct.stdout.replace(/^Kairos contract check for .*\n/, ""),
      r.stdout.replace(/^Kairos contract check for .*\n/, ""),
    );
  });

  it("doctor refuses an unknown transport with a hint", async () => {
    const r = await kairos(["doctor", "nope:thing"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown transport/);
  });
});

describe("kairos framework export", { timeout: 10 * 60_000 }, () => {
  it("writes a one-layer image FROM scratch with the agent, units, boot script and dracut module", async (t) => {
    const dir = await tempDir(t);
    const agent = await ensureAgent(false);
    const out = `oci-archive:${join(dir, "framework.tar")}:latest`;
    const r = await kairos(["--quiet", "--json", "framework", "export", out, "--agent", agent]);
    assert.equal(r.code, 0, r.stderr);
    const img = await openImage(out);
    try {
      assert.equal((await img.layers()).length, 1);
      const view = await imageView(img);
      for (const p of [
        "/usr/bin/kairos-agent",
        "/etc/systemd/system/cos-setup-fs.service",
        "/etc/systemd/system/cos-setup-boot.service",
        "/etc/systemd/system/cos-setup-network.service",
        "/etc/systemd/system/cos-setup-reconcile.service",
        "/etc/systemd/system/cos-setup-reconcile.timer",
        "/etc/systemd/system/kairos-installer.service",
        "/usr/lib/kairos/early-boot.sh",
        "/usr/lib/dracut/modules.d/30kairos/module-setup.sh",
        "/etc/cos/grub.cfg",
        "/system/oem/00_kairos-defaults.yaml",
      ]) {
        assert.ok(await view.exists(p), p);
      }
      // No identity, no initrd: those belong to an image, not to the framework.
      assert.equal(await view.exists("/etc/os-release"), false);
      assert.equal(await view.exists("/boot"), false);
    } finally {
      await img.close();
    }
    const sk = JSON.parse((await run("skopeo", ["inspect", "--config", out])).stdout);
    assert.equal(sk.config.Labels["io.kairos.framework.flavor"], "generic");
  });

  it("refuses a missing agent executable without writing", async (t) => {
    const dir = await tempDir(t);
    const r = await kairos([
      "framework",
      "export",
      `oci-archive:${join(dir, "f.tar")}`,
      "--agent",
      join(dir, "none"),
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /kairos-agent executable .* not found/);
    assert.equal(existsSync(join(dir, "f.tar")), false);
  });
});

describe("FIPS flavor of the agent", { timeout: 5 * 60_000 }, () => {
  it("refuses to start on a host without an OpenSSL FIPS provider, naming what the OS must provide", async () => {
    const fips = await ensureAgent(true);
    const r = await run(fips, ["version"]).then(
      () => ({ code: 0, stderr: "" }),
      (e: { exitCode: number; stderrTail: string }) => ({ code: e.exitCode, stderr: e.stderrTail }),
    );
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^error: this is the FIPS build of kairos-agent and no FIPS-validated OpenSSL provider is loaded/,
    );
    assert.match(r.stderr, /hint: the OS must provide an OpenSSL 3 FIPS provider/);
    const generic = await run(await ensureAgent(false), ["version"]);
    assert.match(generic.stdout, /^\d+\.\d+\.\d+\n$/);
  });
});

describe("module spill on a full filesystem", () => {
  it("says where the space ran out and how to move it (a 1 MiB tmpfs, root)", async (t) => {
    const dir = join(await tempDir(t), "small");
    await run("mkdir", [dir]);
    await run("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", dir]);
    const spill = await ModuleSpill.create(dir);
    try {
      async function* body() {
        for (let i = 0; i < 8; i++) yield Buffer.alloc(256 << 10, i);
      }
      await assert.rejects(
        spill.put("/lib/modules/6.1/kernel/big.ko", body()),
        (e: Error) =>
          e instanceof KairosError &&
          /no space left in .*kairos-modules-.* for the kernel modules/.test(e.message) &&
          /KAIROS_TMPDIR/.test(e.hint ?? ""),
      );
      await spill.close();
      assert.deepEqual(await readdir(dir), [], "the spill's directory is removed");
    } finally {
      await spill.close();
      await run("umount", [dir]);
    }
  });
});
