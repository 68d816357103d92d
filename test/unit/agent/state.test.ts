import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { bootFromCmdline, readNodeState, stateField } from "../../../src/agent/index.js";
import { tempDir } from "../../helpers/tmp.js";

const run = promisify(execFile);
const agent = join(import.meta.dirname, "..", "..", "..", "bin", "kairos-agent");

async function node(t: Parameters<typeof tempDir>[0], marker?: string): Promise<string> {
  const root = await tempDir(t);
  await mkdir(join(root, "run/cos"), { recursive: true });
  await mkdir(join(root, "etc"), { recursive: true });
  if (marker) await writeFile(join(root, "run/cos", marker), "");
  await writeFile(
    join(root, "etc/kairos-release"),
    'KAIROS_NAME="kairos-core-debian"\nKAIROS_VERSION="v1.2.3"\nKAIROS_FLAVOR=debian\n',
  );
  return root;
}

test("each /run/cos marker maps to upstream's boot state", async (t) => {
  for (const [marker, boot] of [
    ["live_mode", "livecd_boot"],
    ["active_mode", "active_boot"],
    ["passive_mode", "passive_boot"],
    ["recovery_mode", "recovery_boot"],
    ["autoreset_mode", "autoreset_boot"],
  ]) {
    const s = await readNodeState(await node(t, marker));
    assert.equal(s.boot, boot, marker);
    assert.equal(s.kairos.version, "v1.2.3");
  }
  assert.equal((await readNodeState(await node(t))).boot, "unknown");
});

test("a live boot reports its medium and the early-boot mode", async (t) => {
  const root = await node(t, "live_mode");
  await mkdir(join(root, "run/initramfs/live"), { recursive: true });
  await writeFile(join(root, "run/kairos-boot-mode"), "netboot\n");
  const s = await readNodeState(root);
  assert.deepEqual(
    { boot: s.boot, mode: s.mode, live: s.live_medium },
    { boot: "livecd_boot", mode: "netboot", live: "/run/initramfs/live" },
  );
  assert.equal(stateField(s, "kairos.flavor"), "debian");
  assert.equal(stateField(s, "kairos.nope"), undefined);
});

test("kairos-agent state and state get, and a clear error for an unknown field", async (t) => {
  const root = await node(t, "active_mode");
  const all = await run(agent, ["state", "--root", root]);
  assert.match(all.stdout, /^boot: active_boot$/m);
  const one = await run(agent, ["state", "--root", root, "get", "kairos.name"]);
  assert.equal(one.stdout, "kairos-core-debian\n");
  await assert.rejects(
    run(agent, ["state", "--root", root, "get", "bogus"]),
    (e: { code: number; stderr: string }) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /no field 'bogus' in the node state/);
      return true;
    },
  );
});

test("without markers the boot comes from the kernel command line, as upstream decides it", () => {
  for (const [line, boot] of [
    ["root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img panic=5", "active_boot"],
    ["root=LABEL=COS_PASSIVE cos-img/filename=/cOS/passive.img", "passive_boot"],
    ["root=LABEL=COS_SYSTEM cos-img/filename=/cOS/recovery.img", "recovery_boot"],
    ["root=LABEL=COS_SYSTEM cos-img/filename=/cOS/recovery.img kairos.reset", "autoreset_boot"],
    ["root=live:CDLABEL=COS_LIVE rd.live.dir=/", "livecd_boot"],
    ["root=/dev/sda1", "unknown"],
  ] as const) {
    assert.equal(bootFromCmdline(line), boot, line);
  }
});

test("partitions by label: found, mounted, type, mount_point, read_only (upstream's keys)", async (t) => {
  const root = await node(t);
  await writeFile(join(root, "run/cos/active_mode"), "");
  await mkdir(join(root, "dev/disk/by-label"), { recursive: true });
  await symlink("../../vda5", join(root, "dev/disk/by-label/COS_STATE"));
  await symlink("../../vda3", join(root, "dev/disk/by-label/COS_OEM"));
  for (const [dev, mm, sectors, part] of [
    ["vda5", "254:5", "2048", "state"],
    ["vda3", "254:3", "4096", "oem"],
  ]) {
    await mkdir(join(root, "sys/class/block", dev!), { recursive: true });
    await writeFile(join(root, "sys/class/block", dev!, "dev"), `${mm}\n`);
    await writeFile(join(root, "sys/class/block", dev!, "size"), `${sectors}\n`);
    await writeFile(join(root, "sys/class/block", dev!, "uevent"), `DEVNAME=${dev}\nPARTNAME=${part}\n`);
  }
  await mkdir(join(root, "proc/self"), { recursive: true });
  await writeFile(
    join(root, "proc/self/mountinfo"),
    [
      "22 1 0:21 / / ro,relatime shared:1 - overlay overlay ro,lowerdir=/run/rootfsbase",
      "30 22 254:5 / /run/initramfs/cos-state rw,relatime shared:9 - ext4 /dev/vda5 rw",
      "31 22 254:3 / /oem ro,relatime shared:10 - ext4 /dev/vda3 ro",
      "",
    ].join("\n"),
  );
  const s = await readNodeState(root);
  assert.equal(s.boot, "active_boot");
  assert.deepEqual(
    [
      s.state.found,
      s.state.mounted,
      s.state.type,
      s.state.mount_point,
      s.state.read_only,
      s.state.name,
      s.state.label,
    ],
    [true, true, "ext4", "/run/initramfs/cos-state", false, "/dev/vda5", "state"],
  );
  assert.equal(s.state.size_bytes, 2048 * 512);
  assert.equal(stateField(s, "oem.read_only"), true);
  assert.equal(stateField(s, "persistent.found"), false);
  assert.equal(stateField(s, "kairos.version"), "v1.2.3");
});

test("kairos-agent state boot prints the boot state alone", async (t) => {
  const root = await node(t, "passive_mode");
  const r = await run(agent, ["state", "--root", root, "boot"]);
  assert.equal(r.stdout, "passive_boot\n");
  const g = await run(agent, ["state", "--root", root, "get", "state.found"]);
  assert.equal(g.stdout, "false\n");
});
