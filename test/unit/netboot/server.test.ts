/**
 * The whole server on loopback: a PXE DISCOVER gets the iPXE binary's name, TFTP serves
 * Debian's iPXE, iPXE's own DISCOVER gets the script URL, and the script's URLs serve the
 * kernel (with ranges), the initrd and the config. Ports are ephemeral; replies that would be
 * broadcast go to the test's socket.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createSocket, type Socket } from "node:dgram";
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  bindError,
  bootCmdline,
  type DhcpPacket,
  decodeDhcp,
  type RunningNetbootServer,
  serverAddress,
  startNetbootServer,
  startTftpServer,
} from "../../../src/netboot/index.js";
import { pxeRequest, tftpGet } from "../../helpers/netboot-client.js";
import { tempDir } from "../../helpers/tmp.js";

const HOST = "127.0.0.1";

async function files(dir: string) {
  await mkdir(dir, { recursive: true });
  const f = {
    kernel: join(dir, "kairos-kernel"),
    initrd: join(dir, "kairos-initrd"),
    squashfs: join(dir, "kairos.squashfs"),
    config: join(dir, "..", "my-config.yaml"),
  };
  await writeFile(f.kernel, randomBytes(100_000));
  await writeFile(f.initrd, randomBytes(50_000));
  await writeFile(f.squashfs, randomBytes(10_000));
  await writeFile(f.config, "#cloud-config\nhostname: netbooted\n");
  return f;
}

async function client(): Promise<Socket> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, HOST, () => r()));
  return s;
}

function ask(s: Socket, port: number, req: Buffer, xid: number): Promise<DhcpPacket> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no DHCP answer")), 3000);
    const on = (m: Buffer) => {
      const p = decodeDhcp(m);
      if (p.xid !== xid) return;
      clearTimeout(t);
      s.off("message", on);
      resolve(p);
    };
    s.on("message", on);
    s.send(req, port, HOST);
  });
}

async function start(
  dir: string,
  s: Socket,
  extra: { cmdline?: string } = {},
): Promise<RunningNetbootServer> {
  return startNetbootServer({
    files: await files(dir),
    address: HOST,
    serverIp: HOST,
    httpPort: 0,
    tftpPort: 0,
    dhcpPort: 0,
    pxePort: 0,
    broadcast: { address: HOST, port: s.address().port },
    ...extra,
  });
}

describe("netboot server on loopback", () => {
  it("firmware → iPXE over TFTP → script → kernel, initrd, config over HTTP", async (t) => {
    const work = await tempDir(t);
    const s = await client();
    const srv = await start(join(work, "nb"), s);
    t.after(async () => {
      await srv.close();
      s.close();
    });
    assert.deepEqual(srv.firmwares.sort(), ["bios", "uefi-x64"], "Debian's ipxe has no arm64 binary");

    const bios = await ask(
      s,
      srv.dhcp.dhcpPort!,
      pxeRequest({ mac: "52:54:00:00:00:01", arch: 0, xid: 1 }),
      1,
    );
    assert.equal(bios.file, "undionly.kpxe");
    assert.equal(bios.yiaddr, "0.0.0.0");
    const efi = await ask(
      s,
      srv.dhcp.dhcpPort!,
      pxeRequest({ mac: "52:54:00:00:00:02", arch: 7, xid: 2 }),
      2,
    );
    assert.equal(efi.file, "ipxe.efi");
    const got = await tftpGet({
      host: HOST,
      port: srv.tftp.port,
      file: efi.file,
      options: { blksize: "1468", tsize: "0" },
    });
    assert.deepEqual(got.data, readFileSync("/usr/lib/ipxe/ipxe.efi"));

    const http = await ask(
      s,
      srv.dhcp.dhcpPort!,
      pxeRequest({ mac: "52:54:00:00:00:03", arch: 16, vendor: "HTTPClient:Arch:00016", xid: 3 }),
      3,
    );
    assert.equal(http.file, `${srv.httpUrl}/ipxe/ipxe.efi`);
    const viaHttp = Buffer.from(await (await fetch(http.file)).arrayBuffer());
    assert.deepEqual(viaHttp, readFileSync("/usr/lib/ipxe/ipxe.efi"));

    const ipxe = await ask(
      s,
      srv.dhcp.dhcpPort!,
      pxeRequest({ mac: "52:54:00:00:00:02", arch: 7, ipxe: true, xid: 4 }),
      4,
    );
    assert.equal(ipxe.file, `${srv.httpUrl}/boot.ipxe`);
    const script = await (await fetch(ipxe.file)).text();
    assert.match(script, /^#!ipxe\n/);
    assert.match(
      script,
      new RegExp(
        `kernel --name kernel ${srv.httpUrl}/kairos-kernel initrd=initrd root=live:${srv.httpUrl}/kairos.squashfs config_url=${srv.httpUrl}/config.yaml rd.neednet=1 ip=dhcp rd.cos.disable netboot`,
      ),
    );
    assert.match(script, new RegExp(`initrd --name initrd ${srv.httpUrl}/kairos-initrd\n`));

    const range = await fetch(`${srv.httpUrl}/kairos-kernel`, { headers: { Range: "bytes=10-19" } });
    assert.equal(range.status, 206);
    assert.deepEqual(
      Buffer.from(await range.arrayBuffer()),
      readFileSync(join(work, "nb", "kairos-kernel")).subarray(10, 20),
    );
    assert.equal(
      await (await fetch(`${srv.httpUrl}/config.yaml`)).text(),
      "#cloud-config\nhostname: netbooted\n",
    );
    // fetch() normalizes some of these itself; either way nothing outside is served.
    for (const path of [
      "/../my-config.yaml",
      "/%2e%2e/my-config.yaml",
      "/ipxe/../../etc/passwd",
      "/ipxe/..%2f..%2fetc/passwd",
    ]) {
      const r = await fetch(`${srv.httpUrl}${path}`);
      assert.ok(r.status === 403 || r.status === 404, `${path}: ${r.status}`);
    }
  });

  it("netboot.cmdline replaces everything but root= and config_url= (as AuroraBoot)", () => {
    const seed = "rd.neednet=1 ip=dhcp rd.cos.disable netboot install-mode console=tty0 selinux=0";
    assert.equal(
      bootCmdline({ squashfsUrl: "http://S/k.squashfs", configUrl: "http://S/config.yaml", cmdline: seed }),
      `root=live:http://S/k.squashfs config_url=http://S/config.yaml ${seed}`,
    );
    assert.equal(
      bootCmdline({ squashfsUrl: "http://S/k.squashfs" }),
      "root=live:http://S/k.squashfs rd.neednet=1 ip=dhcp rd.cos.disable netboot console=tty1 console=ttyS0",
    );
  });

  it("a taken port is a clear error that names the option; so is a missing privilege", async (t) => {
    const work = await tempDir(t);
    const s = await client();
    t.after(() => s.close());
    await assert.rejects(
      startTftpServer({ root: work, address: HOST, port: s.address().port }),
      (e: unknown) =>
        /cannot listen for TFTP on 127\.0\.0\.1:\d+: the port is taken/.test((e as Error).message) &&
        /--tftp-port/.test((e as { hint?: string }).hint ?? ""),
    );
    const e = bindError(
      Object.assign(new Error("x"), { code: "EACCES" }),
      "0.0.0.0:67",
      "DHCP",
      "--dhcp-port",
    );
    assert.match(`${e.message} ${e.hint}`, /ports below 1024 need root/);
    // The HTTP port too, and nothing is left listening after the failure.
    const srv = await start(join(work, "a"), s);
    t.after(() => srv.close());
    await assert.rejects(
      startNetbootServer({
        files: await files(join(work, "b")),
        address: HOST,
        serverIp: HOST,
        httpPort: srv.http.port,
        tftpPort: 0,
        dhcpPort: 0,
        pxePort: 0,
      }),
      /cannot listen on 127\.0\.0\.1:\d+: EADDRINUSE/,
    );
  });

  it("server address: the interface's, the only one, or an error asking for --interface", () => {
    const ifaces = {
      lo: [{ address: "127.0.0.1", netmask: "255.0.0.0", family: "IPv4", internal: true }],
      br0: [{ address: "10.77.0.1", netmask: "255.255.255.0", family: "IPv4", internal: false }],
      eth0: [{ address: "192.168.1.9", netmask: "255.255.255.0", family: "IPv4", internal: false }],
    } as unknown as ReturnType<typeof import("node:os").networkInterfaces>;
    assert.deepEqual(serverAddress({ iface: "br0" }, ifaces), { ip: "10.77.0.1", netmask: "255.255.255.0" });
    assert.throws(
      () => serverAddress({}, ifaces),
      (e: unknown) =>
        /several IPv4/.test((e as Error).message) && /--interface/.test((e as { hint: string }).hint),
    );
    assert.throws(() => serverAddress({ iface: "nope" }, ifaces), /has no IPv4 address/);
    assert.equal(serverAddress({}, { lo: ifaces.lo, br0: ifaces.br0 }).ip, "10.77.0.1");
    assert.equal(serverAddress({ address: "192.168.1.9" }, ifaces).ip, "192.168.1.9");
  });
});
