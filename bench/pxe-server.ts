/**
 * Child process of bench/pxe.ts, so the server's peak RSS is its own:
 *   netboot DIR BCAST_PORT   the whole server on 127.0.0.1, ephemeral ports, replies that would
 *                            be broadcast sent to 127.0.0.1:BCAST_PORT
 *   tftp ROOT PORT           only the TFTP server on 127.0.0.1:PORT
 * Prints one JSON line with the ports, serves until stdin closes.
 */
import { startNetbootServer, startTftpServer } from "../src/netboot/index.js";

const [mode, dir, port] = process.argv.slice(2) as [string, string, string];
let ports: Record<string, number | undefined>;
let close: () => Promise<void>;
if (mode === "tftp") {
  const t = await startTftpServer({ root: dir, address: "127.0.0.1", port: Number(port) });
  ports = { tftp: t.port };
  close = t.close;
} else {
  const srv = await startNetbootServer({
    files: {
      kernel: `${dir}/kairos-kernel`,
      initrd: `${dir}/kairos-initrd`,
      squashfs: `${dir}/kairos.squashfs`,
    },
    address: "127.0.0.1",
    serverIp: "127.0.0.1",
    httpPort: 0,
    tftpPort: 0,
    dhcpPort: 0,
    pxePort: 0,
    broadcast: { address: "127.0.0.1", port: Number(port) },
  });
  ports = { http: srv.http.port, tftp: srv.tftp.port, dhcp: srv.dhcp.dhcpPort };
  close = srv.close;
}
process.stdout.write(`${JSON.stringify({ ...ports, pid: process.pid })}\n`);
process.stdin.resume();
process.stdin.on("end", () => {
  void close().then(() => process.exit(0));
});
