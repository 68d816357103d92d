/**
 * The early-boot script's `kairos_fetch` (root=live:tftp://… and live:http://…) with the same
 * static busybox the initramfs carries, against our TFTP and HTTP servers on loopback.
 */
import assert from "node:assert/strict";
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { test } from "node:test";
import { serveDirectory, startTftpServer } from "../../src/netboot/index.js";
import { tempDir } from "../helpers/tmp.js";

const SCRIPT = resolve(import.meta.dirname, "../../framework/boot/kairos-early-boot.sh");
const BUSYBOX = "/bin/busybox";

/** Run `kairos_fetch URL OUT` from the sourced script (async: our servers share this process). */
function fetchWithScript(
  path: string,
  url: string,
  out: string,
): Promise<{ status: number; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      BUSYBOX,
      ["sh", "-c", `PATH="${path}"; . "${SCRIPT}" && kairos_fetch "$1" "$2"`, "sh", url, out],
      { env: { KAIROS_EARLY_BOOT_LIB: "1" }, timeout: 60_000 },
      (err, _stdout, stderr) => resolve({ status: err ? Number(err.code ?? 1) : 0, stderr }),
    );
  });
}

test("kairos_fetch: tftp:// with busybox tftp, http:// with busybox wget, bad URLs refused", async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, "root");
  await mkdir(join(root, "img"), { recursive: true });
  const data = randomBytes(3_000_000);
  await writeFile(join(root, "img", "rootfs.squashfs"), data);
  // busybox applets must resolve without PATH: make them reachable as `tftp` and `wget`.
  const bin = join(dir, "bin");
  await mkdir(bin);
  for (const a of ["tftp", "wget"]) spawnSync("ln", ["-s", BUSYBOX, join(bin, a)]);
  const tftp = await startTftpServer({ root, address: "127.0.0.1", port: 0 });
  const http = await serveDirectory({ root, listen: "127.0.0.1:0" });
  t.after(async () => {
    await tftp.close();
    await http.close();
  });
  const run = (url: string, out: string) => fetchWithScript(bin, url, out);
  const a = await run(`tftp://127.0.0.1:${tftp.port}/img/rootfs.squashfs`, join(dir, "a"));
  assert.equal(a.status, 0, a.stderr);
  assert.deepEqual(readFileSync(join(dir, "a")), data);
  const b = await run(`${http.url}/img/rootfs.squashfs`, join(dir, "b"));
  assert.equal(b.status, 0, b.stderr);
  assert.deepEqual(readFileSync(join(dir, "b")), data);
  for (const bad of ["tftp://", "tftp://127.0.0.1", "tftp:///img/rootfs.squashfs"]) {
    assert.notEqual((await run(bad, join(dir, "c"))).status, 0, bad);
  }
  assert.notEqual((await run(`tftp://127.0.0.1:${tftp.port}/img/missing`, join(dir, "c"))).status, 0);
  // Sourced with KAIROS_EARLY_BOOT_LIB the script runs nothing (no mounts, no poweroff).
  const only = spawnSync(BUSYBOX, ["sh", "-c", `. "${SCRIPT}"; echo sourced`], {
    encoding: "utf8",
    env: { KAIROS_EARLY_BOOT_LIB: "1" },
  });
  assert.equal(only.stdout, "sourced\n");
});
