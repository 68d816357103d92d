/**
 * The agent is its own program (issue #10 item 8): bundling src/cli/kairos-agent.ts the way
 * scripts/build-agent does pulls in none of the build-host commands or what only they use
 * (ISO/artifact builders, base-image builder, netboot, factory). The image engine (oci, tar)
 * and the squashfs streaming modules are the agent's too: `upgrade` pulls and packs an image;
 * so is the installed-disk GRUB recipe (disk-boot, with the module lists and grub-mkimage
 * arguments it shares with the media builders): `install` builds GRUB's core images.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { build } from "esbuild";

const REPO = join(import.meta.dirname, "..", "..", "..");

test("the kairos-agent bundle carries no build-host module", async () => {
  const r = await build({
    entryPoints: [join(REPO, "src/cli/kairos-agent.ts")],
    bundle: true,
    platform: "node",
    target: "node20",
    format: "cjs",
    write: false,
    metafile: true,
    logLevel: "silent",
    define: { __KAIROS_FIPS__: "false" },
    absWorkingDir: REPO,
  });
  const inputs = Object.keys(r.metafile.inputs).filter((f) => f.startsWith("src/"));
  assert.ok(inputs.includes("src/cli/commands/agent-install.ts"), "the agent's own commands are in it");
  const hostOnly = inputs.filter(
    (f) =>
      /^src\/(base|netboot)\//.test(f) ||
      (/^src\/artifacts\//.test(f) &&
        !/^src\/artifacts\/(squashfs|rootfs-stream|rootfs-index|rootfs-files|disk-boot|bootloader|grub)\.ts$/.test(
          f,
        )) ||
      /^src\/cli\/commands\/(base|build|image|factory|auroraboot|index)\.ts$/.test(f) ||
      (/^src\/factory\//.test(f) && !/^src\/factory\/(fips|os-release)\.ts$/.test(f)),
  );
  assert.deepEqual(hostOnly, []);
});
