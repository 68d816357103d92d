/**
 * framework/boot/kairos-early-boot.sh `kairos_boot_stages` (installed mode): stages.rootfs, the
 * layout it writes, stages.initramfs — from ONE start of the real single-executable agent
 * (scripts/build-agent) that pauses while the script mounts the layout. Run with the same
 * busybox sh the initramfs has, in a private mount + UTS namespace with its own /run, against a
 * root that is an overlay of this host's / with the agent and a test cloud-config added.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { tempDir } from "../helpers/tmp.js";

const REPO = resolve(import.meta.dirname, "../..");
const SCRIPT = join(REPO, "framework/boot/kairos-early-boot.sh");

// rootfs.after writes the layout (as 11_persistency.yaml does); initramfs writes into /srv,
// which only the layout's overlay makes land in /run/overlay/srv/upper.
const CONFIG = `#cloud-config
stages:
  rootfs.after:
    - files:
        - path: /run/cos/cos-layout.env
          content: |
            VOLUMES=""
            RW_PATHS="/srv"
            PERSISTENT_STATE_PATHS=""
  initramfs:
    - files:
        - path: /srv/initramfs-ran
          content: "1"
`;

test("kairos_boot_stages: rootfs, the layout, initramfs from one agent process", async (t) => {
  const agent = execFileSync(join(REPO, "scripts/build-agent"), { encoding: "utf8" }).trim();
  const dir = await tempDir(t);
  const upper = join(dir, "upper");
  const root = join(dir, "root");
  for (const d of [
    upper,
    join(dir, "work"),
    root,
    join(upper, "usr/bin"),
    join(upper, "oem"),
    join(upper, "srv"),
  ])
    await mkdir(d, { recursive: true });
  await writeFile(join(upper, "oem/90_custom.yaml"), CONFIG);
  const out = join(dir, "out");
  // Everything after the overlay runs inside the namespace and is gone with it.
  const sh = `set -e
mount -t tmpfs tmpfs /run
mount -t overlay overlay -o "lowerdir=/,upperdir=${upper},workdir=${dir}/work" "${root}"
cp "${agent}" "${root}/usr/bin/kairos-agent"
set +e
. "${SCRIPT}"
# The script's messages go to the console; here to stderr, where the test reads them.
kairos_say() { echo "$*" >&2; }
KAIROS_ROOT="${root}"
KAIROS_MODE=installed
kairos_boot_stages
mkdir -p "${out}"
cp /run/kairos-stages.log "${out}/stages.log"
[ -e /run/overlay/srv/upper/initramfs-ran ] && : >"${out}/in-overlay"
[ -e /run/kairos-stages ] && : >"${out}/fifos-left"
grep -c " ${root}/\\(dev\\|proc\\|sys\\|run\\) " /proc/mounts >"${out}/binds-left" || true
`;
  const r = spawnSync("unshare", ["-mu", "--propagation", "private", "/bin/busybox", "sh", "-c", sh], {
    env: { KAIROS_EARLY_BOOT_LIB: "1", PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
    encoding: "utf8",
    timeout: 120_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const log = readFileSync(join(out, "stages.log"), "utf8");
  // One process ran both (one log, both stages), and the script saw the handshake.
  assert.match(log, /stage rootfs\.after: 1 step/);
  assert.match(log, /stage initramfs: 1 step\(s\), 0 failed/);
  assert.match(
    r.stdout + r.stderr,
    /stage rootfs done[\s\S]*running stage initramfs[\s\S]*stage initramfs done/,
  );
  assert.doesNotMatch(r.stdout + r.stderr, /one agent per stage|stage rootfs failed/);
  assert.ok(existsSync(join(out, "in-overlay")), "initramfs ran after the layout's overlay on /srv");
  assert.ok(!existsSync(join(upper, "srv/initramfs-ran")), "not written under the layout");
  assert.ok(!existsSync(join(out, "fifos-left")), "the FIFOs are removed");
  assert.equal(readFileSync(join(out, "binds-left"), "utf8").trim(), "0", "the binds are gone");
});
