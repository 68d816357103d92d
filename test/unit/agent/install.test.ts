import assert from "node:assert/strict";
import { test } from "node:test";
import { parse } from "yaml";
import { customMountsConfig, GRUB_STUB_CFG } from "../../../src/agent/index.js";

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

test("GRUB's core image hands over to COS_STATE:/grub2/grub.cfg", () => {
  assert.match(GRUB_STUB_CFG, /search --no-floppy --label --set=root COS_STATE/);
  assert.match(GRUB_STUB_CFG, /configfile \(\$\{root\}\)\/grub2\/grub\.cfg/);
});
