/**
 * framework/boot/kairos-early-boot.sh: finding filesystems by label (kairos_find_label) reads
 * each device once per boot, whole disks before their partitions, and a device that appears
 * later is still found; the persistent-path binds (kairos_bind_state) seed their store once.
 * Real ext4/vfat/ISO9660 filesystems on loop devices, shown to the script as vd* disks through
 * a private /dev and /sys/class/block in a mount namespace, run by the initramfs's busybox sh.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { run } from "../../src/sys/index.js";
import { tempDir } from "../helpers/tmp.js";

const REPO = resolve(import.meta.dirname, "../..");
const SCRIPT = join(REPO, "framework/boot/kairos-early-boot.sh");

interface Fs {
  name: string;
  make: (file: string) => Promise<unknown>;
}

test("kairos_find_label: one read per device, whole disks first, late devices found; kairos_bind_state", async (t) => {
  const dir = await tempDir(t);
  const iso = join(dir, "iso-tree");
  await mkdir(iso);
  await writeFile(join(iso, "f"), "x");
  const ext4 = (label: string) => (f: string) => run("mkfs.ext4", ["-q", "-F", "-L", label, f]);
  const devices: Fs[] = [
    { name: "vdy", make: (f) => run("xorriso", ["-as", "mkisofs", "-quiet", "-V", "COS_DUP", "-o", f, iso]) },
    { name: "vdy1", make: ext4("COS_DUP") },
    { name: "vdz", make: async () => {} },
    { name: "vdz1", make: (f) => run("mkfs.vfat", ["-n", "COS_GRUB", f]) },
    { name: "vdz2", make: ext4("COS_STATE") },
    { name: "vdz3", make: ext4("COS_PERSISTENT") },
    // Named loop*: never looked at, although it carries the label asked for.
    { name: "loop9", make: ext4("COS_LOOPED") },
    // Appears only after the first lookups.
    { name: "vdz4", make: ext4("COS_LATE") },
  ];
  const loops: string[] = [];
  t.after(async () => {
    for (const l of loops) await run("losetup", ["-d", l]).catch(() => {});
  });
  const nodes: string[] = [];
  for (const d of devices) {
    const f = join(dir, `${d.name}.img`);
    await run("truncate", ["-s", "16M", f]);
    await d.make(f);
    const loop = (await run("losetup", ["-f", "--show", f])).stdout.trim();
    loops.push(loop);
    const majMin = readFileSync(`/sys/class/block/${loop.slice(5)}/dev`, "utf8").trim();
    nodes.push(`${d.name} ${majMin.replace(":", " ")}`);
  }
  const root = join(dir, "root");
  await mkdir(join(root, "etc/ssh"), { recursive: true });
  await writeFile(join(root, "etc/ssh/ssh_host_key"), "image key");
  const out = join(dir, "out");
  const [late, ...present] = [nodes.at(-1)!, ...nodes.slice(0, -1)];
  const sh = `set -e
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /sys/class/block
mount -t tmpfs tmpfs /dev
mknod /dev/null c 1 3
mk() { mkdir "/sys/class/block/$1"; mknod "/dev/$1" b "$2" "$3"; }
${present.map((n) => `mk ${n}`).join("\n")}
: >/run/reads
set +e
. "${SCRIPT}"
kairos_say() { echo "$*" >&2; }
# Count the label reads: kairos_label's first dd reads the device's head into /run/kairos-head.
# (A function: busybox sh runs its own dd applet before any dd on PATH.)
dd() {
	case "$*" in *of=/run/kairos-head*) echo "$1" >>/run/reads ;; esac
	command dd "$@"
}
r() { echo "$1=$(kairos_find_label "$2" "$3" || echo none)"; }
exec >"${out}"
r state COS_STATE
r grub COS_GRUB vfat
r grubext4 COS_GRUB ext4
r dup COS_DUP
r dupext4 COS_DUP ext4
r persistent COS_PERSISTENT
r looped COS_LOOPED
r missing COS_MISSING
r late COS_LATE
echo "reads1=$(sort /run/reads | uniq -c | tr -s ' \\n' '  ')"
mk ${late}
r late2 COS_LATE
r state2 COS_STATE
echo "reads2=$(sort /run/reads | uniq -c | tr -s ' \\n' '  ')"
for p in /var/lib/rancher /etc/ssh /a//b/ /usr; do
	kairos_dashed "$p"
	echo "dashed $p $KAIROS_DASHED $(echo "\${p#/}" | tr / -)"
done
KAIROS_ROOT="${root}"
mkdir -p /run/store
kairos_bind_state /run/store /etc/ssh
echo "bound=$(cat "${root}/etc/ssh/ssh_host_key" 2>&1) store=$(ls /run/store | tr '\\n' ,)"
echo changed >"${root}/etc/ssh/ssh_host_key"
umount "${root}/etc/ssh"
kairos_bind_state /run/store /etc/ssh
echo "rebound=$(cat "${root}/etc/ssh/ssh_host_key")"
kairos_bind_state /run/store /var/new
echo "new=$(ls -d "${root}/var/new" /run/store/var-new.bind 2>&1 | tr '\\n' ,)"
`;
  const r = spawnSync("unshare", ["-m", "--propagation", "private", "/bin/busybox", "sh", "-c", sh], {
    env: { KAIROS_EARLY_BOOT_LIB: "1", PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const o = readFileSync(out, "utf8");
  const field = (k: string) => new RegExp(`^${k}=(.*)$`, "m").exec(o)?.[1] ?? `(no ${k} line in:\n${o})`;
  assert.equal(field("state"), "/dev/vdz2");
  assert.equal(field("grub"), "/dev/vdz1");
  assert.equal(field("grubext4"), "none", "TYPE must match as well");
  assert.equal(field("dup"), "/dev/vdy", "the whole disk's ISO9660 label wins over its partition's");
  assert.equal(field("dupext4"), "/dev/vdy1");
  assert.equal(field("persistent"), "/dev/vdz3");
  assert.equal(field("looped"), "none", "loop devices are never looked at");
  assert.equal(field("missing"), "none");
  assert.equal(field("late"), "none");
  assert.equal(field("late2"), "/dev/vdz4", "a device that appears after the first lookups is found");
  assert.equal(field("state2"), "/dev/vdz2");
  // Nine lookups (two of them misses that scan everything again), and still one read per device.
  const once = "1 if=/dev/vdy 1 if=/dev/vdy1 1 if=/dev/vdz 1 if=/dev/vdz1 1 if=/dev/vdz2 1 if=/dev/vdz3";
  assert.equal(field("reads1").trim(), once);
  assert.equal(field("reads2").trim(), `${once} 1 if=/dev/vdz4`);
  for (const line of o.split("\n").filter((l) => l.startsWith("dashed "))) {
    const [, path, ours, trs] = line.split(" ");
    assert.equal(ours, trs, `kairos_dashed ${path} as echo | tr / - gives`);
  }
  assert.match(o, /^dashed \/var\/lib\/rancher var-lib-rancher /m);
  assert.equal(field("bound"), "image key store=etc-ssh.bind,", "first use seeds the store from the image");
  assert.equal(field("rebound"), "changed", "the store is kept, not seeded again");
  assert.deepEqual(
    field("new").split(",").filter(Boolean).sort(),
    ["/run/store/var-new.bind", `${root}/var/new`].sort(),
    "a path the image lacks gets its mount point and an empty store",
  );
});
