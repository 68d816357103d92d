import assert from "node:assert/strict";
import { test } from "node:test";
import {
  earlyGrubCfg,
  ISO_INITRD,
  ISO_KERNEL,
  LIVE_ENTRIES,
  liveCmdline,
  liveGrubCfg,
  netbootCmdline,
} from "../../../src/artifacts/grub.js";

test("live command line follows the factory's live-boot contract", () => {
  assert.equal(
    liveCmdline(),
    "root=live:CDLABEL=COS_LIVE rd.live.dir=/ rd.live.squashimg=rootfs.squashfs console=tty1 console=ttyS0",
  );
  assert.equal(
    netbootCmdline("http://10.0.0.1:8080/kairos.squashfs"),
    "root=live:http://10.0.0.1:8080/kairos.squashfs ip=dhcp rd.neednet=1 netboot console=tty1 console=ttyS0",
  );
});

test("grub.cfg has the live, install and debug entries on serial and screen", () => {
  const cfg = liveGrubCfg({ timeout: 3 });
  assert.match(cfg, /terminal_output console serial/);
  assert.match(cfg, /serial --unit=0 --speed=115200/);
  assert.match(cfg, /set timeout=3/);
  assert.match(cfg, /search --no-floppy --label COS_LIVE --set root/);
  assert.deepEqual(
    LIVE_ENTRIES.map((e) => e.title),
    ["Kairos", "Kairos (install)", "Kairos (debug)"],
  );
  const linuxLines = cfg.split("\n").filter((l) => l.trim().startsWith("linux "));
  assert.equal(linuxLines.length, 3);
  for (const l of linuxLines) assert.ok(l.includes(`${ISO_KERNEL} ${liveCmdline()}`), l);
  assert.ok(linuxLines[1]!.endsWith("install-mode"));
  assert.ok(linuxLines[2]!.endsWith("rd.kairos.debug"));
  assert.equal(cfg.split("\n").filter((l) => l.trim() === `initrd ${ISO_INITRD}`).length, 3);
});

test("extra kernel arguments are appended to every entry", () => {
  const cfg = liveGrubCfg({ extraCmdline: "nomodeset quiet" });
  assert.equal(cfg.split("\n").filter((l) => l.includes("nomodeset quiet")).length, 3);
});

test("grub.cfg refuses values that could inject grub commands", () => {
  for (const bad of ['x" ; reboot', "a\nmenuentry", "$(x)", "a;b", "{x}"]) {
    assert.throws(() => liveGrubCfg({ extraCmdline: bad }), /not allowed in a grub.cfg/, bad);
  }
  assert.throws(() => earlyGrubCfg("BAD LABEL;x"), /not allowed/);
});

test("early config finds the medium by label and hands over to its grub.cfg", () => {
  const cfg = earlyGrubCfg();
  assert.match(cfg, /search --no-floppy --label COS_LIVE --set root/);
  assert.match(cfg, /configfile \(\$root\)\/boot\/grub\/grub.cfg/);
  assert.match(cfg, /KAIROS-GRUB: medium with label COS_LIVE not found/);
});
