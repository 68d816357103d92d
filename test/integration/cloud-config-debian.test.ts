/**
 * The stage runner against a real Debian rootfs (the cached default base, made by mmdebstrap):
 * what it writes must be what the distribution's own tools accept — glibc crypt verifies the
 * password hash, pwck/grpck find nothing wrong with the new entries, `systemctl --root` sees the
 * units enabled/masked, sudo sees the group membership, su can log the user in — and a second
 * run changes nothing.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { ensureDefaultBase } from "../../src/base/index.js";
import { run } from "../../src/sys/index.js";

const AGENT = join(import.meta.dirname, "../../bin/kairos-agent");
const exec = promisify(execFile);

async function sh(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await exec(cmd, args, { maxBuffer: 16 << 20 });
    return { code: 0, out: stdout + stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout + x.stderr };
  }
}

const CONFIG = `#cloud-config
users:
  - name: kairos
    passwd: kairos
    shell: /bin/bash
    groups: [sudo, admin]
    ssh_authorized_keys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKairosTsTestKeyOnly kairos@test"]
hostname: "node-{{ trunc 6 .MachineID }}"
write_files:
  - path: /etc/motd
    content: "built by kairos-ts\\n"
stages:
  boot:
    - name: "services"
      systemctl:
        enable: [ssh, systemd-timesyncd]
        mask: [apt-daily.timer]
    - name: "operators group with a fixed gid"
      ensure_entities:
        - entity: |
            kind: group
            group_name: operators
            password: x
            gid: 950
      users:
        ops:
          passwd: "$6$fixedsalt$knownhashvalueknownhashvalueknownhashvalue"
          groups: [operators]
    - name: "commands run inside the image"
      if: "[ -x /usr/bin/getent ]"
      commands:
        - "getent group admin > /root/admin.txt"
`;

let root = "";

describe("run-stage on a real Debian rootfs", () => {
  after(() => rmSync(root, { recursive: true, force: true }));
  before(async () => {
    const base = await ensureDefaultBase();
    root = mkdtempSync(join(tmpdir(), "kairos-cfg-debian-"));
    await run("tar", [
      "-x",
      "-f",
      base.rootfsTar,
      "-C",
      root,
      "--exclude=./usr/lib/modules",
      "--exclude=./boot",
    ]);
    writeFileSync(join(root, "etc/machine-id"), "5f3a9c0d1e2b4a6f8c7d9e0a1b2c3d4e\n");
    mkdirSync(join(root, "oem"), { recursive: true });
    writeFileSync(join(root, "oem/90_custom.yaml"), CONFIG);
  });

  it("applies the config, and the distribution's tools agree with what was written", async () => {
    const r = await sh(AGENT, ["run-stage", "boot", "--root", root, "--strict"]);
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /commands run in chroot/);
    assert.match(r.out, /stage boot: 4 step\(s\), 0 failed, 0 skipped/);

    const hash = /^kairos:([^:]+):/m.exec(readFileSync(join(root, "etc/shadow"), "utf8"))![1]!;
    assert.match(hash, /^\$6\$/);
    const crypt = await sh("chroot", [
      root,
      "perl",
      "-e",
      'print crypt($ARGV[0], $ARGV[1]) eq $ARGV[1] ? "ok" : "bad"',
      "kairos",
      hash,
    ]);
    assert.equal(crypt.out, "ok", "glibc crypt(3) inside the image verifies our SHA-512-crypt hash");

    const pw = await sh("chroot", [root, "pwck", "-r"]);
    assert.doesNotMatch(pw.out, /kairos|ops/, pw.out);
    const gr = await sh("chroot", [root, "grpck", "-r"]);
    assert.equal(gr.code, 0, gr.out);

    const id = await sh("chroot", [root, "id", "kairos"]);
    assert.match(
      id.out,
      /uid=1000\(kairos\) gid=1000\(kairos\) groups=1000\(kairos\),27\(sudo\),\d+\(admin\)/,
    );
    assert.match((await sh("chroot", [root, "id", "ops"])).out, /950\(operators\)/);
    const sudo = await sh("chroot", [root, "sudo", "-l", "-U", "kairos"]);
    assert.match(sudo.out, /\(ALL : ALL\) ALL/, sudo.out);
    const su = await sh("chroot", [
      root,
      "su",
      "-s",
      "/bin/sh",
      "kairos",
      "-c",
      "cd && id -un && test -r .ssh/authorized_keys && echo keys-ok",
    ]);
    assert.equal(su.out.trim(), "kairos\nkeys-ok", su.out);

    for (const [unit, state] of [
      ["ssh.service", "enabled"],
      ["systemd-timesyncd.service", "enabled"],
      ["apt-daily.timer", "masked"],
    ] as const) {
      const s = await sh("systemctl", [`--root=${root}`, "is-enabled", unit]);
      assert.equal(s.out.trim(), state, unit);
    }
    assert.equal(readFileSync(join(root, "etc/hostname"), "utf8"), "node-5f3a9c\n");
    assert.equal(readFileSync(join(root, "etc/motd"), "utf8"), "built by kairos-ts\n");
    assert.match(readFileSync(join(root, "root/admin.txt"), "utf8"), /^admin:x:\d+:kairos$/m);
  });

  it("a second run writes nothing", async () => {
    const files = [
      "etc/passwd",
      "etc/shadow",
      "etc/group",
      "etc/gshadow",
      "home/kairos/.ssh/authorized_keys",
    ];
    const before = files.map((f) => readFileSync(join(root, f)));
    const r = await sh(AGENT, ["run-stage", "boot", "--root", root]);
    assert.equal(r.code, 0, r.out);
    files.forEach((f, i) => {
      assert.ok(readFileSync(join(root, f)).equals(before[i]!), `${f} changed`);
    });
  });
});
