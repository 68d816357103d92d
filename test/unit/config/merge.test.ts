import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { mergeConfigs } from "../../../src/config/index.js";
import { parse } from "./helpers.js";

const a = (text: string) => parse(`#cloud-config\n${text}`, "a.yaml");
const b = (text: string) => parse(`#cloud-config\n${text}`, "b.yaml");

describe("merge rules", () => {
  it("maps are deep-merged key by key", () => {
    const m = mergeConfigs([
      a("install:\n  device: /dev/sda\n  partitions:\n    oem: {size: 64}\n"),
      b("install:\n  reboot: true\n  partitions:\n    persistent: {size: 0}\n"),
    ]);
    assert.deepEqual(m.value, {
      install: {
        device: "/dev/sda",
        reboot: true,
        partitions: { oem: { size: 64 }, persistent: { size: 0 } },
      },
    });
  });
  it("scalars: the later file wins", () => {
    const m = mergeConfigs([a("install:\n  device: /dev/sda\n"), b("install:\n  device: /dev/vda\n")]);
    assert.equal((m.value.install as { device: string }).device, "/dev/vda");
    assert.equal(m.sources.get("install.device"), "b.yaml:3");
  });
  it("lists of maps are concatenated (users)", () => {
    const m = mergeConfigs([a("users:\n- name: one\n"), b("users:\n- name: two\n")]);
    assert.deepEqual(m.value.users, [{ name: "one" }, { name: "two" }]);
  });
  it("lists of scalars are unioned, first occurrence kept", () => {
    const m = mergeConfigs([
      a("install:\n  bind_mounts: [/var/lib/a, /var/lib/b]\n"),
      b("install:\n  bind_mounts: [/var/lib/b, /var/lib/c]\n"),
    ]);
    assert.deepEqual((m.value.install as { bind_mounts: string[] }).bind_mounts, [
      "/var/lib/a",
      "/var/lib/b",
      "/var/lib/c",
    ]);
    assert.equal(m.sources.get("install.bind_mounts[2]"), "b.yaml:3");
  });
  it("stages accumulate: steps of the same stage from several files run in file order", () => {
    const m = mergeConfigs([
      a("stages:\n  boot:\n  - name: first\n  network:\n  - name: net\n"),
      b("stages:\n  boot:\n  - name: second\n"),
    ]);
    assert.deepEqual(m.value.stages, {
      boot: [{ name: "first" }, { name: "second" }],
      network: [{ name: "net" }],
    });
    assert.equal(m.sources.get("stages.boot[1].name"), "b.yaml:4");
  });
  it("an empty stage (null) does not erase earlier steps", () => {
    const m = mergeConfigs([a("stages:\n  boot:\n  - name: keep\n"), b("stages:\n  boot:\n")]);
    assert.deepEqual(m.value.stages, { boot: [{ name: "keep" }] });
  });
  it("a type change replaces the value and forgets the old sources", () => {
    const m = mergeConfigs([a("users:\n- name: one\n"), b("users: nobody\n")]);
    assert.equal(m.value.users, "nobody");
    assert.equal(m.sources.get("users[0].name"), undefined);
    assert.equal(m.sources.get("users"), "b.yaml:2");
  });
  it("does not mutate its inputs", () => {
    const x = a("users:\n- name: one\n");
    mergeConfigs([x, b("users:\n- name: two\n")]);
    assert.deepEqual(x.value, { users: [{ name: "one" }] });
  });
  it("a __proto__ key stays data and never pollutes prototypes", () => {
    const m = mergeConfigs([
      a("install:\n  device: auto\n"),
      b("__proto__:\n  polluted: true\ninstall:\n  __proto__:\n    x: 1\n"),
    ]);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    assert.equal(Object.getPrototypeOf(m.value), Object.prototype);
    assert.equal(Object.getPrototypeOf(m.value.install), Object.prototype);
  });
});
