/**
 * `kairos build netboot-files` end to end: the kernel, initrd and squashfs it writes, with the
 * kernel command line it writes, boot a QEMU guest (TCG) whose only network is a user-mode NIC
 * restricted to one guestfwd rule to our state-dir HTTP server on the host's 127.0.0.1.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";
import { serveDirectory } from "../../src/netboot/index.js";
import { boot } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";
import { baseRootfsTar } from "./initramfs-fixture.js";
import { isoFixture } from "./iso-fixture.js";

const KAIROS = resolve(import.meta.dirname, "../../bin/kairos");

describe("netboot files boot over our HTTP server (QEMU TCG)", { timeout: 45 * 60_000 }, async () => {
  const tar = await baseRootfsTar();
  it("kernel + initrd + cmdline from build netboot-files; squashfs fetched over HTTP", {}, async (t) => {
    const fx = await isoFixture(tar!);
    const work = await tempDir(t);
    const out = join(work, "netboot");
    const b = spawnSync(
      KAIROS,
      [
        "build",
        "netboot-files",
        "--rootfs-tar",
        tar!,
        "--overlay-rootfs",
        fx.overlay,
        "--base-url",
        "http://10.0.2.100:8080",
        "-o",
        out,
      ],
      { encoding: "utf8" },
    );
    assert.equal(b.status, 0, b.stderr);
    const cmdline = readFileSync(join(out, "kairos-cmdline"), "utf8").trim();
    assert.match(
      cmdline,
      /^root=live:http:\/\/10\.0\.2\.100:8080\/kairos\.squashfs ip=dhcp rd\.neednet=1 netboot /,
    );

    const requests: string[] = [];
    const srv = await serveDirectory({
      root: out,
      listen: "127.0.0.1:0",
      onRequest: (l) => requests.push(l),
    });
    t.after(() => srv.close());
    const vm = await boot({
      firmware: "bios",
      kernel: join(out, "kairos-kernel"),
      initrd: join(out, "kairos-initrd"),
      append: cmdline,
      workDir: work,
      net: [
        "-netdev",
        `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:8080-tcp:127.0.0.1:${srv.port}`,
        "-device",
        "virtio-net-pci,netdev=n0",
      ],
    });
    try {
      const sw = await vm.waitFor("KAIROS-INITRAMFS: switching root (netboot)", 480_000);
      const up = await vm.waitFor(/KAIROS-ISO-BOOTED[^\r\n]*/, 480_000);
      console.log(
        `netboot files: switch_root ${sw.seconds.toFixed(1)}s, multi-user ${up.seconds.toFixed(1)}s`,
      );
      assert.match(up.match, /root=overlay/);
      assert.ok(
        requests.some((r) => / GET \/kairos\.squashfs 200 /.test(r)),
        `the squashfs was fetched from our server: ${requests.join("; ")}`,
      );
    } finally {
      await vm.stop();
    }
  });
});
