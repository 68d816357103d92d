import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { test } from "node:test";
import { ensureDefaultBase } from "../../src/base/index.js";
import { flattenToDirectory, flattenToTar } from "../../src/oci/flatten.js";
import { openImage } from "../../src/oci/index.js";
import { tempDir } from "../helpers/tmp.js";
import { diffSnapshots, snapshotTree } from "../helpers/tree.js";

// The default Debian base (two layers: whiteouts, opaque dirs, a cross-layer hardlink, device
// nodes, setuid files, security.capability xattrs) flattened by us and by umoci must agree
// entry by entry: type, content, mode, owner, xattrs, link targets and hardlink groups.
test("our unpack of the default base equals umoci's, entry by entry", { timeout: 15 * 60_000 }, async (t) => {
  const base = await ensureDefaultBase();
  const dir = await tempDir(t, "kairos-umoci-");
  const image = await openImage(base.ref);
  t.after(() => image.close());

  const ours = join(dir, "ours");
  const stats = await flattenToDirectory(image, ours);
  assert.ok(stats.entries > 10_000, `unpacked ${stats.entries} entries`);

  execFileSync("umoci", ["unpack", "--image", `${base.ociLayout}:latest`, join(dir, "bundle")], {
    stdio: "pipe",
  });
  const theirs = join(dir, "bundle", "rootfs");

  const a = await snapshotTree(ours, { mtimes: true });
  const b = await snapshotTree(theirs, { mtimes: true });
  assert.deepEqual(diffSnapshots(a, b, ["kairos", "umoci"]), []);

  // The layer recipe really exercised what it is meant to.
  assert.equal(a.nodes.get("usr/share/doc"), undefined, "whiteout removed usr/share/doc");
  assert.ok(![...a.nodes.keys()].some((p) => p.startsWith("etc/ssh/ssh_host_")), "host keys whited out");
  assert.ok(
    a.hardlinkGroups.some((g) => g.includes("usr/local/bin/sha256sum") && g.includes("usr/bin/sha256sum")),
    "cross-layer hardlink",
  );
  assert.equal(a.nodes.get("dev/null")?.type, "chardev");
  assert.match(a.nodes.get("usr/bin/sudo")?.mode ?? "", /^4755$/);

  // The tar sink describes the same tree: GNU tar extracts it to the same snapshot.
  const tarFile = join(dir, "flat.tar");
  await pipeline(Readable.from(flattenToTar(image)), createWriteStream(tarFile));
  execFileSync("mkdir", [join(dir, "fromtar")]);
  execFileSync("tar", [
    "-xpf",
    tarFile,
    "-C",
    join(dir, "fromtar"),
    "--numeric-owner",
    "--xattrs",
    "--xattrs-include=*",
  ]);
  const c = await snapshotTree(join(dir, "fromtar"), { mtimes: true });
  assert.deepEqual(diffSnapshots(a, c, ["directory sink", "tar sink"]), []);
});
