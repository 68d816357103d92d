import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { suggest, validateConfig } from "../../../src/config/index.js";
import { fixture, parse } from "./helpers.js";

function check(text: string) {
  return validateConfig(parse(text));
}

describe("schema validation of documented configs", () => {
  for (const name of ["reference.yaml", "stages.yaml", "cloudinit.yaml", "legacy-header.yaml"]) {
    it(`${name} is valid with no warnings`, () => {
      const r = validateConfig(parse(fixture(name), name));
      assert.deepEqual(
        r.errors.map((e) => e.message),
        [],
      );
      assert.deepEqual(
        r.warnings.map((w) => w.message),
        [],
      );
    });
  }
  it("accepts install.device auto and /dev/disk/by-* paths", () => {
    for (const d of [
      "auto",
      "/dev/vda",
      "/dev/nvme0n1",
      "/dev/disk/by-label/COS_STATE",
      "/dev/disk/by-id/ata-X_1",
    ]) {
      assert.deepEqual(check(`#cloud-config\ninstall:\n  device: ${d}\n`).errors, [], d);
    }
  });
});

describe("schema errors", () => {
  it("formats the error as file:line:col: keyPath: expected …, got …", () => {
    const r = check(
      '#cloud-config\nstages:\n  boot:\n  - files:\n    - path: /etc/x\n      permissions: "rw-r--r--"\n',
    );
    assert.equal(r.errors.length, 1);
    const e = r.errors[0]!;
    assert.equal(
      e.message,
      'test.yaml:6:20: stages.boot[0].files[0].permissions: expected an octal mode (e.g. 0644), got "rw-r--r--"',
    );
    assert.equal(e.keyPath, "stages.boot[0].files[0].permissions");
    assert.equal(e.line, 6);
    assert.equal(e.col, 20);
  });
  it("reports every problem of the invalid fixture, each at its own line", () => {
    const r = validateConfig(parse(fixture("invalid.yaml"), "invalid.yaml"));
    const lines = r.errors.map((e) => e.message);
    assert.deepEqual(lines, [
      'invalid.yaml:4:18: users[0].lock_passwd: expected true or false, got "yes please"',
      'invalid.yaml:6:11: install.device: expected a device: "auto", /dev/sdX, /dev/vdX, /dev/nvmeXnY, /dev/disk/by-{id,label,path,uuid,diskseq}/… or script:///path (its output names the device), got "sda"',
      'invalid.yaml:9:13: install.partitions.oem.size: expected a size in MiB (a whole number, 0 = rest of the disk), got "big"',
      'invalid.yaml:14:24: stages.boot[0].files[0].permissions: expected an octal mode (e.g. 0644), got "rw-r--r--"',
      'invalid.yaml:15:11: stages.boot[0].files[1]: missing required key "path"',
      'invalid.yaml:19:11: eject-cd: expected true or false, got "sometimes"',
    ]);
  });
  it("rejects a wrong type in a list item and points at the item", () => {
    const r = check("#cloud-config\nusers:\n- name: a\n  groups: [wheel, 5]\n");
    assert.equal(r.errors[0]!.message, "test.yaml:4:19: users[0].groups[1]: expected a string, got number 5");
  });
  it("rejects a user without a name", () => {
    const r = check("#cloud-config\nusers:\n- passwd: x\n");
    assert.match(r.errors[0]!.message, /users\[0\]: missing required key "name"/);
  });
  it("rejects a stage that is not a list of steps", () => {
    const r = check("#cloud-config\nstages:\n  boot: echo hi\n");
    assert.equal(r.errors[0]!.message, 'test.yaml:3:9: stages.boot: expected a list of steps, got "echo hi"');
  });
  it("rejects an unknown partition filesystem with the allowed list", () => {
    const r = check("#cloud-config\ninstall:\n  partitions:\n    oem:\n      fs: ntfs\n");
    assert.match(
      r.errors[0]!.message,
      /install\.partitions\.oem\.fs: expected one of "ext2", "ext3", "ext4"/,
    );
  });
  it("rejects a mode larger than 07777", () => {
    const r = check(
      "#cloud-config\nstages:\n  x:\n  - directories:\n    - path: /a\n      permissions: 99999\n",
    );
    assert.match(r.errors[0]!.message, /permissions: expected an octal mode/);
  });
});

describe("unknown keys", () => {
  it("warns (not fails) with a did-you-mean suggestion", () => {
    const r = check("#cloud-config\nusers:\n- name: a\n  lock-passwd: true\ninstal:\n  device: auto\n");
    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      r.warnings.map((w) => `${w.line}:${w.col} ${w.keyPath}: ${w.message}`),
      [
        '4:3 users[0].lock-passwd: unknown key, ignored — did you mean "lock_passwd"?',
        '5:1 instal: unknown key, ignored — did you mean "install"?',
      ],
    );
  });
  it("warns about an unknown stage name and suggests the closest", () => {
    const r = check(
      "#cloud-config\nstages:\n  bot:\n  - commands: [ls]\n  after-instal:\n  - commands: [ls]\n",
    );
    assert.deepEqual(
      r.warnings.map((w) => w.message),
      ['unknown stage name — did you mean "boot"?', 'unknown stage name — did you mean "after-install"?'],
    );
  });
  it("warns about unknown step keys inside stages", () => {
    const r = check("#cloud-config\nstages:\n  boot:\n  - comands: [ls]\n");
    assert.equal(r.warnings[0]!.keyPath, "stages.boot[0].comands");
    assert.match(r.warnings[0]!.message, /did you mean "commands"/);
  });
  it('warns that permissions: 644 is decimal, and stays quiet for 0644, 0o644 and "644"', () => {
    const r = check(
      '#cloud-config\nstages:\n  boot:\n  - files:\n    - path: /a\n      permissions: 644\n    - path: /b\n      permissions: 0644\n    - path: /c\n      permissions: "644"\n    - path: /d\n      permissions: 420\n',
    );
    assert.deepEqual(r.errors, []);
    assert.deepEqual(
      r.warnings.map((w) => `${w.line}:${w.col} ${w.keyPath}: ${w.message}`),
      [
        "6:20 stages.boot[0].files[0].permissions: 644 is a decimal number (octal 01204); write 0644 for the mode 644 means in chmod",
      ],
    );
  });
  it("stays quiet inside open sections such as k3s", () => {
    const r = check("#cloud-config\nk3s:\n  enabled: true\n  whatever: [1]\n");
    assert.deepEqual(r.warnings, []);
  });
  it("suggest() treats - and _ alike and ignores far names", () => {
    assert.deepEqual(suggest("extra_partitions", ["extra-partitions", "partitions"]), ["extra-partitions"]);
    assert.deepEqual(suggest("zzzzzz", ["install", "users"]), []);
  });
});

describe("validator crash safety", () => {
  it("an internal failure refuses the file with a plain message, never engine text", () => {
    const cfg = parse("#cloud-config\nhostname: x\n");
    Object.defineProperty(cfg.value, "install", {
      enumerable: true,
      get() {
        throw new TypeError("Cannot read properties of undefined (reading 'boom')");
      },
    });
    const r = validateConfig(cfg);
    assert.equal(r.errors.length, 1);
    assert.equal(
      r.errors[0]!.message,
      "test.yaml:1:1: this config could not be validated (an internal error of kairos-ts; please report it)",
    );
  });
});
