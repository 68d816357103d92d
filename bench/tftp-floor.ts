/**
 * The floor of a TFTP server on Node: what any server written on node:dgram can reach with a
 * lock-step client. On an RRQ it builds every DATA packet of the file up front, answers the
 * blksize/tsize options with an OACK, and then per ACK sends the next prebuilt packet on a
 * socket connected to the client: no timers, no retransmission, no checks, no file reads during
 * the transfer. Not a server to use: bench/pxe.ts runs it beside ours and dnsmasq, so that each
 * run shows how much of the gap to dnsmasq is the runtime's per-packet cost.
 *
 *   node --import tsx bench/tftp-floor.ts ROOT PORT     (prints {"pid":…} when listening)
 */
import { createSocket } from "node:dgram";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [root, portArg] = process.argv.slice(2);
if (!root || !portArg) throw new Error("usage: tftp-floor.ts ROOT PORT");

function packets(data: Buffer, blksize: number): Buffer[] {
  const out: Buffer[] = [];
  const count = Math.floor(data.length / blksize) + 1;
  for (let b = 1; b <= count; b++) {
    const body = data.subarray((b - 1) * blksize, Math.min(data.length, b * blksize));
    const p = Buffer.alloc(4 + body.length);
    p.writeUInt16BE(3, 0);
    p.writeUInt16BE(b & 0xffff, 2);
    body.copy(p, 4);
    out.push(p);
  }
  return out;
}

const main = createSocket("udp4");
main.on("message", (msg, from) => {
  const fields = msg.subarray(2).toString("latin1").split("\0");
  const data = readFileSync(join(root, fields[0]!.replace(/^\/+/, "")));
  let blksize = 512;
  const oack: string[] = [];
  for (let i = 2; i + 1 < fields.length; i += 2) {
    const name = fields[i]!.toLowerCase();
    if (name === "blksize") {
      blksize = Math.min(Number(fields[i + 1]), 65464);
      oack.push("blksize", String(blksize));
    } else if (name === "tsize") {
      oack.push("tsize", String(data.length));
    }
  }
  const pk = packets(data, blksize);
  const s = createSocket("udp4");
  s.bind(0, "127.0.0.1", () =>
    s.connect(from.port, from.address, () => {
      let next = 0;
      if (oack.length > 0) s.send(Buffer.concat([Buffer.from([0, 6]), Buffer.from(`${oack.join("\0")}\0`)]));
      else s.send(pk[next++]!);
      s.on("message", (ack) => {
        if (ack.readUInt16BE(2) !== (next & 0xffff)) return;
        if (next >= pk.length) return s.close();
        s.send(pk[next++]!);
      });
      s.on("error", () => s.close());
    }),
  );
});
main.bind(Number(portArg), "127.0.0.1", () => console.log(JSON.stringify({ pid: process.pid })));
process.stdin.on("end", () => process.exit(0)).resume();
