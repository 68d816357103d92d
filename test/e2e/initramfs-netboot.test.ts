/**
 * Netboot through the universal initramfs: root=live:http://… — the guest's NIC (virtio-net,
 * driver loaded by coldplug) gets a lease from QEMU's user-mode DHCP, and the squashfs comes
 * from an HTTP server on the host's 127.0.0.1 through a guestfwd rule. `restrict=on`: no guest
 * traffic leaves this machine.
 */
import assert from "node:assert/strict";
import { createReadStream } from "node:fs";
import { stat } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { describe, it } from "node:test";
import { extractFromIso } from "../helpers/iso.js";
import { boot } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";
import { baseRootfsTar, liveFixture } from "./initramfs-fixture.js";

describe("universal initramfs netboot (QEMU TCG, user-mode network restricted to a host-loopback HTTP server)", {
  timeout: 45 * 60_000,
}, async () => {
  const tar = await baseRootfsTar();
  it("fetches rootfs.squashfs over HTTP into RAM and boots it", {}, async (t) => {
    const fx = await liveFixture(tar!);
    const work = await tempDir(t);
    const sq = join(work, "rootfs.squashfs");
    await extractFromIso(fx.iso, "/rootfs.squashfs", sq);
    const size = (await stat(sq)).size;
    const requests: string[] = [];
    const server = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      if (req.url !== "/rootfs.squashfs") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-length": size, "content-type": "application/octet-stream" });
      createReadStream(sq).pipe(res);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    t.after(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as AddressInfo).port;
    const vm = await boot({
      firmware: "bios",
      kernel: fx.kernel,
      initrd: fx.initrd,
      append: "console=ttyS0 root=live:http://10.0.2.100:8080/rootfs.squashfs ip=dhcp rd.neednet=1 netboot",
      workDir: work,
      net: [
        "-netdev",
        `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-tcp:127.0.0.1:${port}`,
        "-device",
        "virtio-net-pci,netdev=n0",
      ],
    });
    try {
      const sw = await vm.waitFor("KAIROS-INITRAMFS: switching root (netboot)", 240_000);
      const up = await vm.waitFor(/KAIROS-TEST-BOOTED[^\r\n]*/, 200_000);
      console.log(
        `netboot: switch_root at ${sw.seconds.toFixed(1)}s, multi-user at ${up.seconds.toFixed(1)}s: ${up.match}`,
      );
      assert.match(up.match, /mode=netboot root=overlayfs live=rootfs\.squashfs/);
      assert.deepEqual(requests, ["GET /rootfs.squashfs"]);
      assert.match(vm.log(), /kairos-initramfs: network up on eth0/);
    } finally {
      await vm.stop();
    }
  });
});
