import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { run } from "../../src/sys/index.js";
import { startRegistry, type TestRegistry } from "../helpers/registry.js";
import { tempDir } from "../helpers/tmp.js";

const KAIROS = join(import.meta.dirname, "../../bin/kairos");

async function kairos(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(KAIROS, args, {
      env: { ...process.env, KAIROS_DEBUG: "" },
    });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

describe("kairos image CLI", () => {
  let reg: TestRegistry;
  before(async () => {
    reg = await startRegistry();
  });
  after(() => reg?.stop());

  it("from-rootfs → push → inspect → pull → unpack, with --json output and plain progress", async (t) => {
    const dir = await tempDir(t);
    await mkdir(join(dir, "root/etc"), { recursive: true });
    await writeFile(join(dir, "root/etc/hostname"), "kairos\n");
    const fr = await kairos([
      "--json",
      "image",
      "from-rootfs",
      join(dir, "root"),
      `oci:${dir}/layout`,
      "--tag",
      "v1",
      "--label",
      "org.example=1",
      "--env",
      "PATH=/usr/bin",
      "--entrypoint",
      '["/sbin/init"]',
    ]);
    assert.equal(fr.code, 0, fr.stderr);
    const frOut = JSON.parse(fr.stdout);
    assert.match(frOut.digest, /^sha256:[0-9a-f]{64}$/);
    assert.equal(frOut.layers, 1);
    // progress was JSON lines on stderr
    assert.ok(
      fr.stderr
        .split("\n")
        .filter(Boolean)
        .every((l) => JSON.parse(l).event),
      fr.stderr,
    );

    const push = await kairos(["image", "push", `oci:${dir}/layout:v1`, `docker://${reg.host}/cli/img:v1`]);
    assert.equal(push.code, 0, push.stderr);
    assert.match(push.stdout, new RegExp(`docker://${reg.host}/cli/img:v1 ${frOut.digest}`));
    assert.match(push.stderr, /push sha256:[0-9a-f]{12}: (started|done)/);

    const insp = await kairos(["--json", "image", "inspect", `docker://${reg.host}/cli/img:v1`]);
    assert.equal(insp.code, 0, insp.stderr);
    const d = JSON.parse(insp.stdout);
    assert.equal(d.digest, frOut.digest);
    assert.deepEqual(d.entrypoint, ["/sbin/init"]);
    assert.deepEqual(d.labels, { "org.example": "1" });
    assert.deepEqual(d.env, ["PATH=/usr/bin"]);

    const raw = await kairos(["image", "inspect", "--raw", `docker://${reg.host}/cli/img:v1`]);
    const { stdout: skRaw } = await run("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://${reg.host}/cli/img:v1`,
    ]);
    assert.equal(raw.stdout, skRaw);

    const pull = await kairos([
      "image",
      "pull",
      `docker://${reg.host}/cli/img:v1`,
      `oci-archive:${dir}/pulled.tar:v1`,
    ]);
    assert.equal(pull.code, 0, pull.stderr);
    const cp = await kairos([
      "image",
      "copy",
      `oci-archive:${dir}/pulled.tar:v1`,
      `docker-archive:${dir}/d.tar:cli/img:v1`,
    ]);
    assert.equal(cp.code, 0, cp.stderr);
    const un = await kairos(["image", "unpack", `docker-archive:${dir}/d.tar`, `${dir}/out`]);
    assert.equal(un.code, 0, un.stderr);
    assert.equal(await readFile(`${dir}/out/etc/hostname`, "utf8"), "kairos\n");
  });

  it("exits non-zero with one readable line for bad input", async (t) => {
    const dir = await tempDir(t);
    const cases: [string[], RegExp][] = [
      [
        ["image", "inspect", "debian:12"],
        /error: unknown transport .*\nhint: prefix it with one of: docker:\/\//,
      ],
      [
        ["image", "inspect", "--platform", "linux", `docker://${reg.host}/cli/img:v1`],
        /invalid platform 'linux'/,
      ],
      [["image", "inspect", `docker://${reg.host}/cli/nothing:v1`], /not found in registry/],
      [["image", "push", `oci:${dir}`, `oci:${dir}/x`], /push needs a docker:\/\/ destination/],
      [
        ["image", "pull", `docker://${reg.host}/cli/img:v1`, `docker://${reg.host}/x:1`],
        /pull writes local images/,
      ],
      [["image", "from-rootfs", `${dir}/missing`, `oci:${dir}/o`], /dir:.*missing: no such directory/],
      [["image", "from-rootfs", dir, `oci:${dir}/o2`, "--env", "NOEQ"], /invalid env 'NOEQ'/],
      [
        ["image", "from-rootfs", dir, `oci:${dir}/o3`, "--entrypoint", "[broken"],
        /--entrypoint is not a valid JSON array/,
      ],
      [["image", "inspect", "--creds", "nocolon", `docker://${reg.host}/cli/img:v1`], /invalid --creds/],
    ];
    for (const [args, re] of cases) {
      const r = await kairos(args);
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(" "));
      assert.ok(!/\n\s+at /.test(r.stderr), `stack trace printed for ${args.join(" ")}`);
    }
    // nothing half-written by the refused commands
    assert.deepEqual((await readdir(dir)).sort(), []);
    await assert.rejects(stat(`${dir}/o`), /ENOENT/);
  });
});
