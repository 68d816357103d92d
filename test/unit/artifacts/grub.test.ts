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

test("grub.cfg has upstream's live entries on serial and screen, plain live boot first", () => {
  const cfg = liveGrubCfg({ timeout: 3 });
  assert.match(cfg, /terminal_output console serial/);
  assert.match(cfg, /terminal_input console serial/);
  assert.match(cfg, /serial --unit=0 --speed=115200/);
  assert.match(cfg, /insmod all_video/);
  assert.match(cfg, /set timeout=3/);
  assert.match(cfg, /set default=0\n/);
  assert.match(cfg, /search --no-floppy --label COS_LIVE --set root/);
  const titles = [...cfg.matchAll(/^menuentry "([^"]+)"/gm)].map((m) => m[1]);
  assert.deepEqual(titles, [
    "Kairos",
    "Kairos (install)",
    "Kairos (interactive install)",
    "Kairos (remote recovery mode)",
    "Kairos (boot local node from livecd)",
    "Kairos (debug)",
  ]);
  assert.deepEqual(
    LIVE_ENTRIES.map((e) => e.title),
    titles,
  );
  const linuxLines = cfg.split("\n").filter((l) => l.trim().startsWith("linux "));
  assert.equal(linuxLines.length, 6);
  // The default entry's command line is exactly the live contract (the e2e tests boot it).
  assert.equal(linuxLines[0]!.trim(), `linux ${ISO_KERNEL} ${liveCmdline()}`);
  for (const l of linuxLines) assert.ok(l.includes(`${ISO_KERNEL} ${liveCmdline()}`), l);
  // Each other entry adds exactly upstream's keyword (ours for debug).
  const extras = linuxLines.map((l) => l.trim().slice(`linux ${ISO_KERNEL} ${liveCmdline()}`.length).trim());
  assert.deepEqual(extras, [
    "",
    "install-mode",
    "install-mode-interactive",
    "kairos.remote_recovery_mode",
    "kairos.boot_live_mode",
    "rd.kairos.debug",
  ]);
  assert.equal(cfg.split("\n").filter((l) => l.trim() === `initrd ${ISO_INITRD}`).length, 6);
});

test("the default entry can be chosen, but only among the entries there are", () => {
  assert.match(liveGrubCfg({ defaultEntry: 5 }), /set default=5\n/);
  for (const bad of [-1, 6, 1.5]) {
    assert.throws(() => liveGrubCfg({ defaultEntry: bad }), /default menu entry .* does not exist \(0-5\)/);
  }
});

test("extra kernel arguments are appended to every entry", () => {
  const cfg = liveGrubCfg({ extraCmdline: "nomodeset quiet" });
  assert.equal(cfg.split("\n").filter((l) => l.includes("nomodeset quiet")).length, 6);
  assert.ok(cfg.includes(`${liveCmdline()} kairos.remote_recovery_mode nomodeset quiet`));
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
