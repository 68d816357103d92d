/**
 * `kairos-agent run-stage rootfs initramfs --pause DIR`: one agent process runs both stages and,
 * between them, hands over to the caller through two FIFOs (what the installed initramfs does to
 * mount the layout without starting the agent twice). The caller's side is driven the way
 * framework/boot/kairos-early-boot.sh drives it: both FIFOs held open read-write.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "../../helpers/tmp.js";

const AGENT = join(import.meta.dirname, "../../../bin/kairos-agent");

const CONFIG = `#cloud-config
stages:
  rootfs:
    - files:
        - path: /rootfs-ran
          content: "1"
  initramfs:
    - files:
        - path: /initramfs-ran
          content: "1"
`;

/** Read one line from the FIFO the agent writes (off the main thread, so timers still run). */
async function readLine(fh: FileHandle): Promise<string> {
  const b = Buffer.alloc(1);
  let s = "";
  for (;;) {
    const { bytesRead } = await fh.read(b, 0, 1, null);
    if (bytesRead === 0 || b[0] === 0x0a) return s;
    s += String.fromCharCode(b[0]!);
  }
}

async function setup(t: Parameters<typeof tempDir>[0]) {
  const dir = await tempDir(t);
  const root = join(dir, "root");
  const hs = join(dir, "hs");
  spawnSync("mkdir", ["-p", root, hs]);
  for (const f of ["up", "down"]) assert.equal(spawnSync("mkfifo", [join(hs, f)]).status, 0);
  writeFileSync(join(dir, "config.yaml"), CONFIG);
  // As the early-boot script: `exec 3<>up 4<>down`, so no open on either side blocks.
  const up = await open(join(hs, "up"), "r+");
  const down = await open(join(hs, "down"), "r+");
  t.after(async () => {
    await up.close();
    await down.close();
  });
  const child = spawn(
    AGENT,
    ["run-stage", "rootfs", "initramfs", "--root", root, "--config", join(dir, "config.yaml"), "--pause", hs],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.on("data", (d) => {
    stderr += d;
  });
  // As the script's wrapper: the agent's end is announced on `up` too, so no read waits forever.
  const exited = new Promise<number>((r) =>
    child.on("exit", (c) => {
      void up.write(`exit ${c}\n`).then(() => r(c ?? -1));
    }),
  );
  return { root, up, down, exited, stderr: () => stderr };
}

test("run-stage A B --pause: A runs, the caller's turn, then B, all in one process", async (t) => {
  const s = await setup(t);
  assert.equal(await readLine(s.up), "rootfs done", s.stderr());
  assert.ok(existsSync(join(s.root, "rootfs-ran")), "rootfs ran before the pause");
  assert.ok(!existsSync(join(s.root, "initramfs-ran")), "initramfs waits for the caller");
  // The caller's work between the stages (the initramfs mounts the layout here).
  await s.down.write("go\n");
  assert.equal(await s.exited, 0, s.stderr());
  assert.equal(await readLine(s.up), "exit 0");
  assert.ok(existsSync(join(s.root, "initramfs-ran")), "initramfs ran after the answer");
});

test("run-stage A B --pause: without FIFOs it refuses after A, saying what it needs", async (t) => {
  const dir = await tempDir(t);
  writeFileSync(join(dir, "config.yaml"), CONFIG);
  const r = spawnSync(
    AGENT,
    [
      "run-stage",
      "rootfs",
      "initramfs",
      "--root",
      dir,
      "--config",
      join(dir, "config.yaml"),
      "--pause",
      join(dir, "missing"),
    ],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--pause needs the FIFOs DIR\/up and DIR\/down/);
  assert.ok(existsSync(join(dir, "rootfs-ran")));
  assert.ok(!existsSync(join(dir, "initramfs-ran")));
});
