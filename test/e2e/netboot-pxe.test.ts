/**
 * PXE end to end, all inside a network namespace of our own: a bridge with tap devices,
 * dnsmasq as the site's ordinary DHCP server (addresses only: no DNS, no PXE, no TFTP) and
 * `kairos netboot DIR` as ProxyDHCP + TFTP + HTTP; QEMU guests (TCG) on a tap with `-boot n`.
 *  - BIOS: SeaBIOS runs the NIC's iPXE option ROM, which gets our iPXE script directly.
 *  - UEFI: OVMF's own PXE client (the NIC has no option ROM: romfile=) gets ipxe.efi over
 *    TFTP, which then gets the script.
 *  - full DHCP + install-mode: no dnsmasq; our server hands out the addresses (--dhcp-range),
 *    the command line is the seed's (with install-mode) and the cloud-config says
 *    install.device auto + poweroff; the guest has an empty virtio disk. After the live boot
 *    checks, it installs itself and powers off; then that disk boots alone (no network) to
 *    active_boot with the config_url's user and stages.
 * Each boots to multi-user from the squashfs over HTTP, with the cloud-config from config_url
 * applied (its user exists and its stages.boot command ran). The install rides on the full
 * DHCP case so the suite gets no separate long chain.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, it, type TestContext } from "node:test";
import { run } from "../../src/sys/index.js";
import { BRIDGE_IP, createNetns } from "../helpers/netns.js";
import { boot } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";
import { DISK_BYTES, LOCK_WAIT_MS, poweredOff, virtioDrive } from "./lifecycle-fixture.js";
import { netbootFixture, PXE_CLOUD_CONFIG } from "./netboot-fixture.js";

const KAIROS = resolve(import.meta.dirname, "../../bin/kairos");
/** The seed's netboot.cmdline without install-mode, plus the serial console for the markers. */
const CMDLINE = "rd.neednet=1 ip=dhcp rd.cos.disable netboot console=tty0 console=ttyS0 selinux=0";
/** The seed's netboot.cmdline as written (install-mode included), plus the serial console. */
const INSTALL_CMDLINE =
  "rd.neednet=1 ip=dhcp rd.cos.disable netboot install-mode console=tty0 console=ttyS0 selinux=0";
/**
 * The install case's config_url: the same user and marker, the boot state on the console
 * (livecd_boot, then active_boot once installed) and an unattended install to the largest disk.
 */
const INSTALL_CLOUD_CONFIG = `${PXE_CLOUD_CONFIG}    - name: pxe e2e boot state
      commands:
        - echo "KAIROS-PXE-STATE $(kairos-agent state boot)" > /dev/ttyS0
  after-install-chroot:
    - name: pxe e2e, after-install-chroot inside the new system
      commands:
        - echo "KAIROS-PXE-CHROOT oem=$(ls /oem | tr "\\n" ,) live=$(test -e /run/cos/live_mode && echo yes || echo no) local=$(touch /usr/local/pxe-chroot && echo rw)" > /dev/ttyS0
install:
  device: auto
  poweroff: true
`;

async function waitForText(get: () => string, re: RegExp, ms: number, what: string): Promise<string> {
  const end = Date.now() + ms;
  for (;;) {
    const m = re.exec(get());
    if (m) return m[0];
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; output:\n${get().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Case {
  firmware: "bios" | "uefi";
  full: boolean;
  /** install-mode on the command line and an empty disk: install, power off, boot the disk. */
  install?: boolean;
}

async function pxeBoot(t: TestContext, c: Case): Promise<void> {
  const fx = await netbootFixture();
  const work = await tempDir(t);
  const cc = join(work, "config.yaml");
  writeFileSync(cc, c.install ? INSTALL_CLOUD_CONFIG : PXE_CLOUD_CONFIG);
  const disk = join(work, "disk.raw");
  if (c.install) await run("truncate", ["-s", String(DISK_BYTES), disk]);
  const ns = createNetns("kpxe", ["tap0"]);
  t.after(() => ns.destroy());
  let dnsmasq: ReturnType<typeof ns.spawn> | undefined;
  if (!c.full) {
    dnsmasq = ns.spawn(
      "dnsmasq",
      [
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        "--interface=br0",
        "--bind-interfaces",
        "--dhcp-range=10.77.0.50,10.77.0.99,1h",
        `--dhcp-leasefile=${join(work, "leases")}`,
        "--log-dhcp",
      ],
      join(work, "dnsmasq.log"),
    );
    await waitForText(() => dnsmasq!.output(), /DHCP, IP range/, 10_000, "dnsmasq to start");
  }
  const server = ns.spawn(
    KAIROS,
    [
      "netboot",
      fx.dir,
      "--cloud-config",
      cc,
      "--cmdline",
      c.install ? INSTALL_CMDLINE : CMDLINE,
      ...(c.full ? ["--dhcp-range", "10.77.0.100,10.77.0.120"] : []),
    ],
    join(work, "netboot.log"),
  );
  await waitForText(() => server.output(), /netboot: ready/, 30_000, "kairos netboot to start");
  assert.match(server.output(), new RegExp(c.full ? "DHCP server for 10.77.0.100-10.77.0.120" : "ProxyDHCP"));
  assert.match(server.output(), new RegExp(`HTTP http://${BRIDGE_IP.replace(/\./g, "\\.")}:8090`));

  const nic =
    c.firmware === "uefi"
      ? "virtio-net-pci,netdev=n0,mac=52:54:00:77:00:02,romfile="
      : "virtio-net-pci,netdev=n0,mac=52:54:00:77:00:01";
  const vm = await boot({
    firmware: c.firmware,
    workDir: work,
    netns: ns.name,
    net: ["-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no", "-device", nic],
    extraArgs: ["-boot", "n", ...(c.install ? virtioDrive(disk, "raw") : [])],
    lockTimeoutMs: LOCK_WAIT_MS,
  });
  try {
    const sw = await vm.waitFor("KAIROS-INITRAMFS: switching root (netboot)", 600_000);
    const stage = await vm.waitFor("KAIROS-STAGE-BOOT-RAN", 480_000);
    const up = await vm.waitFor(/KAIROS-PXE-UP[^\r\n]*/, 480_000);
    console.log(
      `${c.firmware}${c.full ? " full DHCP" : " proxy"}: switch_root ${sw.seconds.toFixed(1)}s, stages.boot ${stage.seconds.toFixed(1)}s, multi-user ${up.seconds.toFixed(1)}s`,
    );
    assert.match(up.match, /root=overlay/);
    assert.match(up.match, /mode=netboot/);
    assert.match(up.match, /user=1000\b/, "the cloud-config's user exists");
    assert.match(up.match, /marker=from-config-url/, "the config_url's stages.boot ran");
    assert.match(up.match, c.full ? /addr=10\.77\.0\.1(0\d|1\d|20)\// : /addr=10\.77\.0\.(5\d|[6-9]\d)\//);
    if (c.install) {
      assert.match((await vm.waitFor(/KAIROS-PXE-STATE[^\r\n]*/, 120_000)).match, /livecd_boot/);
      const inst = await vm.waitFor(/installing to \/dev\/vda[^\r\n]*/, 600_000);
      const off = await poweredOff(vm, 1_200_000);
      // after-install-chroot ran in the installed image (no live_mode flag in its /run) with
      // COS_OEM at /oem (the cloud-config was written there first) and COS_PERSISTENT writable.
      // (The step's own output, not the agent's log line that quotes the command.)
      const chroot = /KAIROS-PXE-CHROOT oem=(?!\$)[^\r\n]*/.exec(vm.log())?.[0] ?? "";
      assert.match(
        chroot,
        /oem=[^ ]*90_custom\.yaml[^ ]* live=no local=rw/,
        chroot || "no after-install-chroot marker",
      );
      console.log(
        `install-mode: installer started ${inst.seconds.toFixed(1)}s, powered off ${off.toFixed(1)}s`,
      );
    }
  } finally {
    await vm.stop();
  }
  const log = server.output();
  if (c.firmware === "uefi") {
    assert.match(
      log,
      /proxy OFFER ipxe\.efi|OFFER 10\.77\.0\.\d+ ipxe\.efi/,
      "OVMF got ipxe.efi from the offer",
    );
    assert.match(log, /tftp 10\.77\.0\.\d+:\d+ ipxe\.efi sent/, "and loaded it over TFTP");
  }
  assert.match(log, /boot\.ipxe/, "iPXE was given the script");
  assert.match(log, /GET \/boot\.ipxe 200/);
  assert.match(log, /GET \/kairos-kernel 200/);
  assert.match(log, /GET \/kairos-initrd 200/);
  assert.match(log, /GET \/kairos\.squashfs 200/);
  assert.match(log, /GET \/config\.yaml 200/);
  if (dnsmasq) {
    assert.match(
      dnsmasq.output(),
      /DHCPACK\(br0\) 10\.77\.0\.\d+ 52:54:00:77/,
      "addresses came from dnsmasq",
    );
    assert.doesNotMatch(log, /ACK 10\.77/, "ProxyDHCP never handed out an address");
  }
  if (c.install) await bootInstalled(work, disk);
}

/** The disk installed over the network boots on its own (no NIC) to active_boot with the config_url's config. */
async function bootInstalled(work: string, disk: string): Promise<void> {
  const vm = await boot({
    firmware: "bios",
    workDir: work,
    extraArgs: virtioDrive(disk, "raw"),
    lockTimeoutMs: LOCK_WAIT_MS,
  });
  try {
    const sw = await vm.waitFor("KAIROS-INITRAMFS: switching root (installed)", 600_000);
    const state = await vm.waitFor(/KAIROS-PXE-STATE[^\r\n]*/, 600_000);
    const up = await vm.waitFor(/KAIROS-PXE-UP[^\r\n]*/, 480_000);
    console.log(
      `installed disk: switch_root ${sw.seconds.toFixed(1)}s, ${state.match.trim()}, multi-user ${up.seconds.toFixed(1)}s`,
    );
    assert.match(vm.log(), /root=LABEL=COS_ACTIVE cos-img\/filename=\/cOS\/active\.img/);
    assert.match(state.match, /KAIROS-PXE-STATE active_boot\b/);
    assert.match(up.match, /mode=installed\b/);
    assert.match(up.match, /user=1000\b/, "the config_url's user exists on the installed system");
    assert.match(
      up.match,
      /marker=from-config-url/,
      "the config_url's stages.boot runs on the installed system",
    );
  } finally {
    await vm.stop();
  }
}

describe("PXE boot in a network namespace (QEMU TCG)", { timeout: 60 * 60_000 }, () => {
  it("BIOS, ProxyDHCP beside dnsmasq: iPXE ROM → script → kernel/initrd → squashfs + config_url", (t) =>
    pxeBoot(t, { firmware: "bios", full: false }));
  it("UEFI (OVMF's PXE), ProxyDHCP beside dnsmasq: TFTP ipxe.efi → script → multi-user", (t) =>
    pxeBoot(t, { firmware: "uefi", full: false }));
  it("BIOS, our server as the full DHCP server (--dhcp-range), install-mode: installs, powers off, the disk boots", (t) =>
    pxeBoot(t, { firmware: "bios", full: true, install: true }));
});
