import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ConfigError,
  configFromCmdline,
  parseDotPath,
  splitCmdline,
  validateConfig,
} from "../../../src/config/index.js";

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    return err;
  }
  assert.fail("expected ConfigError");
}

describe("kernel command line", () => {
  it("splits on spaces and keeps double-quoted words together", () => {
    assert.deepEqual(
      splitCmdline('console=ttyS0 "stages.boot[0].commands[0]=echo hi" x').map((w) => [w.text, w.col]),
      [
        ["console=ttyS0", 1],
        ["stages.boot[0].commands[0]=echo hi", 15],
        ["x", 52],
      ],
    );
  });
  it("parses dot notation with list indexes", () => {
    assert.deepEqual(parseDotPath("stages.boot[0].commands[1]"), ["stages", "boot", 0, "commands", 1]);
    assert.equal(parseDotPath("install..device"), undefined);
    assert.equal(parseDotPath("install."), undefined);
  });
  it("turns config_url and dot keys into config, ignoring ordinary kernel arguments", () => {
    const cfg = configFromCmdline(
      'BOOT_IMAGE=/vmlinuz console=ttyS0 root=LABEL=COS_STATE config_url=http://10.0.0.1/c.yaml install.device=/dev/vda install.auto "stages.boot[0].commands[0]=echo hi" install.partitions.oem.size=512',
    );
    assert.ok(cfg);
    assert.deepEqual(cfg.value, {
      config_url: "http://10.0.0.1/c.yaml",
      install: { device: "/dev/vda", auto: true, partitions: { oem: { size: 512 } } },
      stages: { boot: [{ commands: ["echo hi"] }] },
    });
    assert.deepEqual(validateConfig(cfg).errors, []);
  });
  it("types values by the schema: booleans, sizes, strings stay strings", () => {
    const cfg = configFromCmdline(
      "install.reboot=false strict=true install.device=123 install.system.size=2048",
    )!;
    assert.deepEqual(cfg.value, {
      install: { reboot: false, device: "123", system: { size: 2048 } },
      strict: true,
    });
  });
  it("returns nothing when the command line holds no config", () => {
    assert.equal(configFromCmdline("quiet splash console=tty0"), undefined);
  });
  it("points schema errors at the column of the word", () => {
    const cfg = configFromCmdline("quiet install.reboot=maybe")!;
    const e = validateConfig(cfg).errors[0]!;
    assert.equal(e.message, '/proc/cmdline:1:7: install.reboot: expected true or false, got "maybe"');
  });
  it("refuses a malformed key with its column", () => {
    const e = thrown(() => configFromCmdline("quiet stages.boot[x].commands=1"));
    assert.equal(e.col, 7);
    assert.match(e.message, /malformed key in dot notation/);
  });
  it("refuses huge list indexes", () => {
    assert.match(thrown(() => configFromCmdline("stages.boot[99999999].name=x")).message, /too large/);
  });
  it("refuses __proto__ segments", () => {
    assert.match(
      thrown(() => configFromCmdline("install.__proto__.polluted=1")).message,
      /refusing the key segment/,
    );
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
  });
  it("refuses an index on a key already holding a map", () => {
    assert.match(thrown(() => configFromCmdline("install.device=x install[0]=y")).message, /not a list/);
  });
});
