import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, locate, mergeConfigs, validateConfig } from "../../../src/config/index.js";
import { parse } from "./helpers.js";

describe("key case under install/upgrade/reset (upstream reads them through viper)", () => {
  it("reads kairos-docs' `extra-partitions: - Name:` as name, with no warning and the source position", () => {
    const cfg = parse(
      "#cloud-config\ninstall:\n  Device: /dev/vda\n  extra-partitions:\n    - Name: data\n      Size: 100\n      FS: ext4\n",
    );
    const install = cfg.value.install as Record<string, unknown>;
    assert.equal(install.device, "/dev/vda");
    assert.deepEqual(install["extra-partitions"], [{ name: "data", size: 100, fs: "ext4" }]);
    assert.deepEqual(locate(cfg, ["install", "extra-partitions", 0, "name"], true), { line: 5, col: 7 });
    const v = validateConfig(cfg);
    assert.deepEqual(v.errors, []);
    assert.deepEqual(v.warnings, []);
  });

  it("normalises upgrade and reset keys, nested maps included", () => {
    const cfg = parse(
      "#cloud-config\nupgrade:\n  Recovery: true\n  System:\n    URI: oci:quay.io/kairos/x:1\nreset:\n  Reset-Persistent: true\n  GRUB-Entry-Name: Mine\n",
    );
    assert.deepEqual(cfg.value.upgrade, { recovery: true, system: { uri: "oci:quay.io/kairos/x:1" } });
    assert.deepEqual(cfg.value.reset, { "reset-persistent": true, "grub-entry-name": "Mine" });
    assert.deepEqual(validateConfig(cfg).warnings, []);
  });

  it("a later file's lower-case key overrides an earlier file's capitalised one", () => {
    const a = parse("#cloud-config\ninstall:\n  Device: /dev/vda\n  Reboot: true\n", "/oem/10.yaml");
    const b = parse("#cloud-config\ninstall:\n  device: /dev/sda\n", "/oem/20.yaml");
    const m = mergeConfigs([a, b]);
    assert.deepEqual(m.value.install, { device: "/dev/sda", reboot: true });
    assert.equal(m.sources.get("install.device"), "/oem/20.yaml:3");
    assert.equal(m.sources.get("install.reboot"), "/oem/10.yaml:4");
  });

  it("keeps unknown keys as written and still warns about them", () => {
    const cfg = parse("#cloud-config\ninstall:\n  Devicee: /dev/vda\n");
    assert.ok(Object.hasOwn(cfg.value.install as object, "Devicee"));
    const w = validateConfig(cfg).warnings;
    assert.equal(w.length, 1);
    assert.equal(w[0]!.line, 3);
    assert.match(w[0]!.message, /unknown key/);
  });

  it("leaves data alone: install.env map keys, and blocks upstream reads case-sensitively", () => {
    const cfg = parse(
      "#cloud-config\ninstall:\n  env:\n    - HTTP_PROXY: http://p:3128\nstages:\n  boot:\n    - Name: x\n",
    );
    assert.deepEqual((cfg.value.install as Record<string, unknown>).env, [{ HTTP_PROXY: "http://p:3128" }]);
    const step = ((cfg.value.stages as Record<string, unknown>).boot as Record<string, unknown>[])[0]!;
    assert.ok(Object.hasOwn(step, "Name"), "stage steps are yip's (case-sensitive YAML), not viper's");
  });

  it("refuses two keys that differ only in case, naming both places", () => {
    assert.throws(
      () => parse("#cloud-config\ninstall:\n  extra-partitions:\n    - name: a\n      NAME: b\n"),
      (e: unknown) =>
        e instanceof ConfigError &&
        e.line === 5 &&
        e.col === 7 &&
        e.message.includes('duplicate key "NAME": the same key as "name" at 4:7'),
    );
  });
});
