import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type ConsoleRules, ConsoleWatch, DEFAULT_CONSOLE_RULES } from "../../../src/artifacts/index.js";

const RULES: ConsoleRules = { ...DEFAULT_CONSOLE_RULES, silenceMs: 10_000, kernelAfterLoaderMs: 5_000 };
const GRUB = "Loading kernel (Kairos)...\r\nLoading initrd...\r\n";

describe("ConsoleWatch", () => {
  it("says up at the login prompt, even split across chunks", () => {
    const w = new ConsoleWatch(RULES, 0);
    assert.equal(w.feed(GRUB, 1000), undefined);
    assert.equal(w.feed("[    0.000000] Linux version 6.1\r\n", 2000), undefined);
    assert.equal(w.feed("\r\nkairos log", 3000), undefined);
    assert.deepEqual(w.feed("in: ", 3100), { kind: "up" });
  });

  it("fails at once on a fail marker, naming the line", () => {
    const w = new ConsoleWatch(RULES, 0);
    assert.deepEqual(w.feed("x\nKernel panic - not syncing: VFS: Unable to mount root fs\nmore", 500), {
      kind: "failed",
      line: "Kernel panic - not syncing: VFS: Unable to mount root fs",
    });
  });

  it("fails a guest that never prints after the silence bound, not before", () => {
    const w = new ConsoleWatch(RULES, 0);
    assert.equal(w.tick(9_999), undefined);
    assert.deepEqual(w.tick(10_000), { kind: "silent", ms: 10_000 });
  });

  it("restarts the silence clock on every output", () => {
    const w = new ConsoleWatch(RULES, 0);
    w.feed("SeaBIOS\n", 8_000);
    assert.equal(w.tick(17_000), undefined);
    assert.deepEqual(w.tick(18_000), { kind: "silent", ms: 10_000 });
  });

  it("fails fast when GRUB handed over and the kernel printed nothing (the PVM hang)", () => {
    const w = new ConsoleWatch(RULES, 0);
    w.feed("GNU GRUB  version 2.06\n", 1000);
    w.feed(GRUB, 2000);
    assert.equal(w.tick(6_999), undefined);
    assert.deepEqual(w.tick(7_000), { kind: "no-kernel", ms: 5_000 });
    assert.deepEqual(w.tail(2), ["Loading kernel (Kairos)...", "Loading initrd..."]);
  });

  it("does not fire the kernel bound once anything follows GRUB's last line", () => {
    for (const chunks of [[GRUB, "[    0.000000] Linux version"], [`${GRUB}[    0.000000] Linux`]]) {
      const w = new ConsoleWatch(RULES, 0);
      for (const c of chunks) w.feed(c, 1000);
      assert.equal(w.tick(9_000), undefined, JSON.stringify(chunks));
    }
  });

  it("keeps only the last lines for the error message", () => {
    const w = new ConsoleWatch(RULES, 0);
    w.feed(Array.from({ length: 30 }, (_, i) => `line ${i}`).join("\r\n"), 10);
    assert.deepEqual(w.tail(3), ["line 27", "line 28", "line 29"]);
    w.feed("\r\n\x1b[K[  \x1b[0;31m*\x1b[0m] Job cos-setup-boot.service", 20);
    assert.deepEqual(w.tail(1), ["[  *] Job cos-setup-boot.service"]);
  });
});
