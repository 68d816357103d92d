import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { lstat, readdir, readlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import { run } from "../../src/sys/index.js";
import { tempDir } from "../helpers/tmp.js";
import { NET_RAW_CAP, xattrTree } from "../unit/oci/fixtures.js";

const KAIROS = join(import.meta.dirname, "../../bin/kairos");

async function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(cmd, args, {
      env: { ...process.env, KAIROS_DEBUG: "", ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

/** `getfattr -d -m - -e hex` of one path, as name → hex. */
async function xattrsOf(path: string): Promise<Record<string, string>> {
  const { stdout } = await run("getfattr", ["-h", "-d", "-m", "-", "-e", "hex", "--absolute-names", path]);
  return Object.fromEntries(
    stdout
      .split("\n")
      .filter((l) => l.includes("=0x"))
      .map((l) => {
        const [k, v] = l.split("=0x") as [string, string];
        return [k, v];
      }),
  );
}

describe("kairos image from-rootfs keeps xattrs byte-exact (checked by umoci unpack)", {
  skip: process.getuid?.() !== 0 && "needs root (setcap, mknod)",
}, () => {
  it("DIR and dir:DIR give the same image; umoci unpacks the capability, the user. xattr and every node", async (t) => {
    const dir = await tempDir(t);
    const root = join(dir, "root");
    await xattrTree(root);
    const env = { SOURCE_DATE_EPOCH: "1700000000" };
    const a = await sh(KAIROS, ["--json", "image", "from-rootfs", root, `oci:${dir}/a:t`], env);
    assert.equal(a.code, 0, a.stderr);
    const b = await sh(KAIROS, ["--json", "image", "from-rootfs", `dir:${root}`, `oci:${dir}/b:t`], env);
    assert.equal(b.code, 0, b.stderr);
    assert.equal(JSON.parse(b.stdout).digest, JSON.parse(a.stdout).digest);

    await run("umoci", ["unpack", "--image", `${dir}/b:t`, join(dir, "bundle")]);
    const rootfs = join(dir, "bundle/rootfs");
    const ping = await xattrsOf(join(rootfs, "bin/ping"));
    assert.equal(ping["security.capability"], NET_RAW_CAP);
    assert.equal(ping["user.kairos"], "68656c6c6f00776f726c64");
    assert.equal(await readlink(join(rootfs, "bin/dangling")), "/nonexistent/target");
    const dev = await lstat(join(rootfs, "dev/null"));
    assert.ok(dev.isCharacterDevice());
    assert.equal(dev.rdev, (1 << 8) | 3);
    assert.ok((await lstat(join(rootfs, "run/fifo"))).isFIFO());
    // The capability really works as one: getcap reads it back from the unpacked file.
    const { stdout } = await run("getcap", [join(rootfs, "bin/ping")]);
    assert.match(stdout, /cap_net_raw[=+]ep/);
  });

  it("a missing getfattr is an error naming the Debian package attr, and writes nothing", async (t) => {
    const dir = await tempDir(t);
    const root = join(dir, "root");
    await xattrTree(root);
    // Hide getfattr in a private mount namespace: an empty, non-executable file over it.
    const blank = join(dir, "blank");
    await writeFile(blank, "");
    const r = await sh("unshare", [
      "-m",
      "sh",
      "-c",
      'mount --bind "$1" /usr/bin/getfattr && exec "$2" image from-rootfs "$3" "oci:$4:t"',
      "sh",
      blank,
      KAIROS,
      root,
      join(dir, "out"),
    ]);
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /getfattr not found/);
    assert.match(r.stderr, /Debian package 'attr'/);
    assert.deepEqual((await readdir(dir)).sort(), ["blank", "root"]);
  });
});
