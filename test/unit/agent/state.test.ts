import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { readNodeState, stateField } from "../../../src/agent/index.js";
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
    ["live_mode", "live_boot"],
    ["active_mode", "active_boot"],
    ["passive_mode", "passive_boot"],
    ["recovery_mode", "recovery_boot"],
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
    { boot: "live_boot", mode: "netboot", live: "/run/initramfs/live" },
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
