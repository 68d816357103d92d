import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { after, describe, it } from "node:test";
import { disableUnit, enableUnit, maskUnit } from "../../../src/agent/index.js";

const top = mkdtempSync(join(tmpdir(), "kairos-systemctl-"));
after(() => rmSync(top, { recursive: true, force: true }));

/** A root with a few units exercising WantedBy, RequiredBy, Alias, Also and templates. */
function tree(name: string): string {
  const r = join(top, name);
  const lib = join(r, "usr/lib/systemd/system");
  mkdirSync(lib, { recursive: true });
  mkdirSync(join(r, "etc/systemd/system"), { recursive: true });
  const unit = (file: string, text: string) => writeFileSync(join(lib, file), text);
  unit(
    "sshd.service",
    "[Service]\nExecStart=/usr/sbin/sshd\n[Install]\nWantedBy=multi-user.target\nAlias=ssh.service\nAlso=sshd.socket\n",
  );
  unit("sshd.socket", "[Socket]\nListenStream=22\n[Install]\nWantedBy=sockets.target\n");
  unit(
    "getty@.service",
    "[Service]\nExecStart=/sbin/agetty %I\n[Install]\nWantedBy=getty.target\nDefaultInstance=tty1\n",
  );
  unit(
    "needs.service",
    "[Service]\nExecStart=/bin/true\n[Install]\nRequiredBy=graphical.target\nWantedBy=a.target b.target\n",
  );
  unit("static.service", "[Service]\nExecStart=/bin/true\n");
  return r;
}

/** Every symlink under etc/systemd/system as "path -> target", sorted. */
function links(root: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isSymbolicLink()) out.push(`${relative(root, p)} -> ${readlinkSync(p)}`);
      else if (e.isDirectory()) walk(p);
    }
  };
  walk(join(root, "etc/systemd/system"));
  return out.sort();
}

/** Directories systemctl leaves behind empty after disable don't matter; compare links only. */
function systemctl(root: string, ...args: string[]): void {
  execFileSync("systemctl", [`--root=${root}`, ...args], { stdio: "pipe" });
}

describe("offline systemctl matches `systemctl --root`", () => {
  it("enable (WantedBy, RequiredBy, Alias, Also, templates with and without an instance) and mask", () => {
    const ours = tree("ours-enable");
    const theirs = tree("theirs-enable");
    for (const u of ["sshd", "getty@tty2", "getty@.service", "needs"]) enableUnit(ours, u);
    maskUnit(ours, "bluetooth");
    systemctl(theirs, "enable", "sshd", "getty@tty2", "getty@.service", "needs");
    systemctl(theirs, "mask", "bluetooth");
    assert.deepEqual(links(ours), links(theirs));
    assert.ok(links(ours).length >= 7);
  });

  it("disable removes the same links (and leaves masks)", () => {
    const ours = tree("ours-disable");
    const theirs = tree("theirs-disable");
    for (const r of [ours, theirs]) systemctl(r, "enable", "sshd", "needs", "getty@tty2");
    systemctl(ours, "mask", "bluetooth");
    systemctl(theirs, "mask", "bluetooth");
    disableUnit(ours, "sshd");
    disableUnit(ours, "needs");
    systemctl(theirs, "disable", "sshd", "needs");
    assert.deepEqual(links(ours), links(theirs));
  });

  it("a unit without [Install] enables nothing, as systemctl says", () => {
    const ours = tree("ours-static");
    assert.match(enableUnit(ours, "static")[0]!, /no \[Install\] section/);
    assert.deepEqual(links(ours), []);
  });

  it("refuses unit names that are options or paths", () => {
    const ours = tree("ours-bad");
    for (const bad of ["--now", "../../etc/passwd", "a/b", ""]) {
      assert.throws(() => enableUnit(ours, bad), /invalid unit name/, bad);
    }
    assert.ok(statSync(join(ours, "etc/systemd/system")).isDirectory());
  });
});
