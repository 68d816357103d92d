import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { parse } from "yaml";
import { customMountsConfig, installGrubenv, liveSource, parseGrubenv } from "../../../src/agent/index.js";
import { tempDir } from "../../helpers/tmp.js";

const run = promisify(execFile);
const agent = join(import.meta.dirname, "..", "..", "..", "bin", "kairos-agent");

test("install.bind_mounts / ephemeral_mounts become a rootfs step writing upstream's CUSTOM_* variables", () => {
  assert.equal(customMountsConfig({}), undefined);
  const text = customMountsConfig({ bind_mounts: ["/var/lib/ceph/"], ephemeral_mounts: ["/opt/scratch"] })!;
  assert.match(text, /^#cloud-config\n/);
  const step = parse(text).stages.rootfs[0];
  assert.equal(step.environment_file, "/run/cos/custom-layout.env");
  assert.deepEqual(step.environment, {
    CUSTOM_BIND_MOUNTS: "/var/lib/ceph",
    CUSTOM_EPHEMERAL_MOUNTS: "/opt/scratch",
  });
});

test("custom mounts that would break the layout file are refused", () => {
  for (const bad of [["relative"], ["/a b"], ['/a"b'], "/not-a-list", [42]]) {
    assert.throws(
      () => customMountsConfig({ bind_mounts: bad }),
      /install\.bind_mounts must be a list of absolute paths/,
    );
  }
  assert.throws(() => customMountsConfig({ ephemeral_mounts: ["x"] }), /install\.ephemeral_mounts/);
});

test("manual-install refuses before touching anything: both power flags, no live medium", async (t) => {
  const dir = await tempDir(t);
  const cfg = join(dir, "c.yaml");
  await writeFile(cfg, "#cloud-config\ninstall:\n  device: /dev/vda\n");
  await assert.rejects(
    run(agent, ["manual-install", cfg, "--reboot", "--poweroff"]),
    (e: { stderr: string }) => {
      assert.match(e.stderr, /--reboot and --poweroff exclude each other/);
      return true;
    },
  );
  await assert.rejects(run(agent, ["manual-install", join(dir, "missing.yaml")]), (e: { code: number }) => {
    assert.equal(e.code, 1);
    return true;
  });
});

test("install needs the live medium's image and says so", async () => {
  await assert.rejects(liveSource("/nonexistent-root"), /install runs on a live system \(ISO or netboot\)/);
});

test("install.grub_options and grub_options become COS_OEM:/grubenv, the top-level ones winning", () => {
  const env = parseGrubenv(
    installGrubenv({
      install: { grub_options: { extra_cmdline: "from=install", timeout: 1, default_fallback: "fallback" } },
      grub_options: { extra_cmdline: "from=top", saved_entry: "recovery" },
    }),
  );
  assert.deepEqual(Object.fromEntries(env), {
    extra_cmdline: "from=top",
    timeout: "1",
    default_fallback: "fallback",
    saved_entry: "recovery",
  });
  assert.equal(parseGrubenv(installGrubenv({})).size, 0, "no options: an empty environment block");
  assert.equal(installGrubenv({}).length, 1024);
});

test("grub_options that GRUB could not load are refused before the install writes anything", () => {
  assert.throws(
    () => installGrubenv({ grub_options: { "a=b": "x" } }),
    /'a=b' is not a valid GRUB environment variable name/,
  );
  assert.throws(
    () => installGrubenv({ install: { grub_options: { extra_cmdline: ["x"] } } }),
    /install\.grub_options\.extra_cmdline must be a string/,
  );
  assert.throws(() => installGrubenv({ grub_options: "timeout=1" }), /grub_options must be a map/);
  assert.throws(
    () => installGrubenv({ grub_options: { extra_cmdline: "x".repeat(2000) } }),
    /would be \d+ bytes; the block holds 1024/,
  );
});
