import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { describe, it } from "node:test";
import {
  answer,
  clientArch,
  DhcpMessage,
  DhcpPacketError,
  type DhcpPolicy,
  decodeDhcp,
  encodeDhcp,
  LeasePool,
  messageType,
  Opt,
  optionIp,
  optionText,
  parseDhcpRange,
  startDhcpServer,
  userClasses,
} from "../../../src/netboot/index.js";
import { pxeRequest } from "../../helpers/netboot-client.js";

const MAC = "52:54:00:12:34:56";
const policy = (extra: Partial<DhcpPolicy> = {}): DhcpPolicy => ({
  serverIp: "10.77.0.1",
  urls: { httpBase: "http://10.77.0.1:8090", available: new Set(["bios", "uefi-x64"]) },
  ...extra,
});

describe("DHCP packet codec", () => {
  it("round-trips a PXE DISCOVER with its options", () => {
    const uuid = Buffer.from([0, ...Array(16).fill(7)]);
    const p = decodeDhcp(pxeRequest({ mac: MAC, arch: 7, uuid, xid: 0xdeadbeef }));
    assert.equal(p.xid, 0xdeadbeef);
    assert.equal(messageType(p), DhcpMessage.DISCOVER);
    assert.equal(clientArch(p), 7);
    assert.match(optionText(p, Opt.CLASS_ID)!, /^PXEClient:Arch:00007/);
    assert.deepEqual(p.options.get(Opt.UUID), uuid);
    const again = decodeDhcp(encodeDhcp(p));
    assert.deepEqual(again, p);
  });

  it("joins a long option split in pieces (RFC 3396) and reads RFC 3004 user classes", () => {
    const p = decodeDhcp(pxeRequest({ mac: MAC, arch: 0 }));
    p.options.set(
      Opt.USER_CLASS,
      Buffer.concat([Buffer.from([4]), Buffer.from("iPXE"), Buffer.from([2, 65, 66])]),
    );
    p.options.set(250, Buffer.alloc(600, 1));
    const back = decodeDhcp(encodeDhcp(p));
    assert.equal(back.options.get(250)!.length, 600);
    assert.deepEqual(userClasses(back), ["iPXE", "AB"]);
  });

  it("refuses truncated, cookie-less and overlong-option packets", () => {
    const good = pxeRequest({ mac: MAC, arch: 0 });
    assert.throws(() => decodeDhcp(good.subarray(0, 100)), DhcpPacketError);
    const noCookie = Buffer.from(good);
    noCookie.writeUInt32BE(0, 236);
    assert.throws(() => decodeDhcp(noCookie), /cookie/);
    const bad = Buffer.concat([good.subarray(0, 240), Buffer.from([53, 200, 1])]);
    assert.throws(() => decodeDhcp(bad), /runs past/);
    const hlen = Buffer.from(good);
    hlen[2] = 17;
    assert.throws(() => decodeDhcp(hlen), /hardware address length/);
  });
});

describe("ProxyDHCP answers", () => {
  const offer = (o: Parameters<typeof pxeRequest>[0], pol = policy()) =>
    answer(decodeDhcp(pxeRequest(o)), "dhcp", pol);

  it("boot file by client architecture (option 93); never an address", () => {
    const cases: [number, string, string][] = [
      [0, "undionly.kpxe", "PXEClient"],
      [7, "ipxe.efi", "PXEClient"],
      [9, "ipxe.efi", "PXEClient"],
      [16, "http://10.77.0.1:8090/ipxe/ipxe.efi", "HTTPClient"],
    ];
    for (const [arch, file, vendor] of cases) {
      const a = offer({ mac: MAC, arch, vendor: arch === 16 ? "HTTPClient:Arch:00016" : undefined });
      assert.ok(a.reply, `arch ${arch}: ${a.note}`);
      assert.equal(a.reply.file, file, `arch ${arch}`);
      assert.equal(a.reply.yiaddr, "0.0.0.0");
      assert.equal(a.reply.siaddr, "10.77.0.1");
      assert.equal(messageType(a.reply), DhcpMessage.OFFER);
      assert.equal(optionIp(a.reply, Opt.SERVER_ID), "10.77.0.1");
      assert.equal(optionText(a.reply, Opt.CLASS_ID), vendor);
      assert.equal(a.reply.options.has(Opt.SUBNET_MASK), false);
      assert.equal(a.reply.options.has(Opt.LEASE_TIME), false);
      assert.equal(a.to, "broadcast");
    }
  });

  it("arm64 UEFI (11) and arm64 HTTP (19) are answered when an arm64 iPXE exists, else not", () => {
    assert.equal(offer({ mac: MAC, arch: 11 }).reply, undefined);
    assert.match(offer({ mac: MAC, arch: 11 }).note, /ipxe-arm64\.efi/);
    const pol = policy({
      urls: { httpBase: "http://10.77.0.1:8090", available: new Set(["bios", "uefi-x64", "uefi-arm64"]) },
    });
    assert.equal(offer({ mac: MAC, arch: 11 }, pol).reply?.file, "ipxe-arm64.efi");
    assert.equal(
      offer({ mac: MAC, arch: 19, vendor: "HTTPClient:Arch:00019" }, pol).reply?.file,
      "http://10.77.0.1:8090/ipxe/ipxe-arm64.efi",
    );
  });

  it("iPXE (option 77 or 175) gets the HTTP script, not iPXE again", () => {
    assert.equal(offer({ mac: MAC, arch: 0, ipxe: true }).reply?.file, "http://10.77.0.1:8090/boot.ipxe");
    const p = decodeDhcp(pxeRequest({ mac: MAC, arch: 7 }));
    p.options.set(Opt.IPXE, Buffer.from([1, 1, 1]));
    assert.equal(answer(p, "dhcp", policy()).reply?.file, "http://10.77.0.1:8090/boot.ipxe");
  });

  it("ignores non-PXE clients, unknown architectures and REQUESTs on 67", () => {
    assert.equal(offer({ mac: MAC, arch: 0, vendor: "" }).reply, undefined);
    assert.equal(offer({ mac: MAC, arch: 0, vendor: "MSFT 5.0" }).reply, undefined);
    assert.equal(offer({ mac: MAC, arch: 42 }).reply, undefined);
    assert.equal(offer({ mac: MAC }).reply, undefined);
    assert.equal(offer({ mac: MAC, arch: 0, type: DhcpMessage.REQUEST }).reply, undefined);
  });

  it("answers the PXE boot-server REQUEST on 4011 with an ACK to the sender, echoing the UUID", () => {
    const uuid = Buffer.from([0, ...Array(16).fill(3)]);
    const req = decodeDhcp(
      pxeRequest({ mac: MAC, arch: 7, type: DhcpMessage.REQUEST, ciaddr: "10.77.0.60", uuid }),
    );
    const a = answer(req, "pxe", policy());
    assert.equal(messageType(a.reply!), DhcpMessage.ACK);
    assert.equal(a.reply!.file, "ipxe.efi");
    assert.equal(a.reply!.yiaddr, "0.0.0.0");
    assert.equal(a.to, "sender");
    assert.deepEqual(a.reply!.options.get(Opt.UUID), uuid);
  });
});

describe("full DHCP mode", () => {
  const full = () => {
    let now = 1_000_000;
    const pool = new LeasePool({ start: "10.77.0.100", end: "10.77.0.101", leaseSeconds: 60 });
    const pol = policy({ full: { pool, subnetMask: "255.255.255.0", leaseSeconds: 60 }, now: () => now });
    return { pol, pool, tick: (ms: number) => (now += ms) };
  };

  it("offers and acks addresses from the range only, to PXE and plain clients", () => {
    const { pol } = full();
    const o1 = answer(decodeDhcp(pxeRequest({ mac: MAC, arch: 0 })), "dhcp", pol);
    assert.equal(o1.reply?.yiaddr, "10.77.0.100");
    assert.equal(o1.reply?.file, "undionly.kpxe");
    assert.equal(optionIp(o1.reply!, Opt.SUBNET_MASK), "255.255.255.0");
    const plain = answer(decodeDhcp(pxeRequest({ mac: "52:54:00:00:00:02", vendor: "" })), "dhcp", pol);
    assert.equal(plain.reply?.yiaddr, "10.77.0.101");
    assert.equal(plain.reply?.file, "");
    const third = answer(decodeDhcp(pxeRequest({ mac: "52:54:00:00:00:03", vendor: "" })), "dhcp", pol);
    assert.equal(third.reply, undefined, "the range is exhausted");
    const ack = answer(
      decodeDhcp(
        pxeRequest({
          mac: MAC,
          arch: 0,
          type: DhcpMessage.REQUEST,
          requested: "10.77.0.100",
          serverId: "10.77.0.1",
        }),
      ),
      "dhcp",
      pol,
    );
    assert.equal(messageType(ack.reply!), DhcpMessage.ACK);
    assert.equal(ack.reply!.yiaddr, "10.77.0.100");
  });

  it("NAKs an address in the range held by another client; silent on one chosen from another server", () => {
    const { pol } = full();
    answer(decodeDhcp(pxeRequest({ mac: MAC, arch: 0 })), "dhcp", pol);
    const steal = answer(
      decodeDhcp(
        pxeRequest({ mac: "52:54:00:00:00:09", type: DhcpMessage.REQUEST, requested: "10.77.0.100" }),
      ),
      "dhcp",
      pol,
    );
    assert.equal(messageType(steal.reply!), DhcpMessage.NAK);
    const other = answer(
      decodeDhcp(
        pxeRequest({
          mac: MAC,
          type: DhcpMessage.REQUEST,
          requested: "192.168.1.5",
          serverId: "192.168.1.1",
        }),
      ),
      "dhcp",
      pol,
    );
    assert.equal(other.reply, undefined);
  });

  it("expired offers, releases and declines return addresses (declined ones only later)", () => {
    const { pool, tick } = full();
    const t0 = 1_000_000;
    assert.equal(pool.offer("a", undefined, t0), "10.77.0.100");
    assert.equal(pool.offer("b", undefined, t0), "10.77.0.101");
    assert.equal(pool.offer("c", undefined, t0), undefined);
    assert.equal(pool.offer("c", undefined, t0 + 61_000), "10.77.0.100", "a's offer expired");
    pool.release("c");
    pool.decline("b", "10.77.0.101", t0 + 61_000);
    assert.equal(pool.offer("d", "10.77.0.101", t0 + 62_000), "10.77.0.100", "declined address skipped");
    assert.equal(pool.bind("d", "10.77.0.102", t0), false, "outside the range");
    tick(0);
  });

  it("--dhcp-range parsing", () => {
    assert.deepEqual(parseDhcpRange("10.0.0.5, 10.0.0.9"), { start: "10.0.0.5", end: "10.0.0.9" });
    for (const bad of ["10.0.0.9,10.0.0.5", "10.0.0.5", "a,b", "10.0.0.256,10.0.0.300"]) {
      assert.throws(() => parseDhcpRange(bad), /START,END/, bad);
    }
  });
});

/** Deterministic pseudo-random bytes (xorshift), so a failing case can be replayed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

describe("DHCP fuzz", () => {
  it("5000 random and mutated packets: decode either works or throws DhcpPacketError; answer never throws", () => {
    const r = rng(11);
    const seeds = [
      pxeRequest({ mac: MAC, arch: 0 }),
      pxeRequest({ mac: MAC, arch: 7, ipxe: true }),
      pxeRequest({
        mac: MAC,
        arch: 16,
        vendor: "HTTPClient",
        type: DhcpMessage.REQUEST,
        requested: "10.77.0.100",
      }),
    ];
    const pool = new LeasePool({ start: "10.77.0.100", end: "10.77.0.110", leaseSeconds: 60 });
    const pols = [policy(), policy({ full: { pool, subnetMask: "255.255.255.0", leaseSeconds: 60 } })];
    let decoded = 0;
    for (let i = 0; i < 5000; i++) {
      let buf: Buffer;
      if (i % 4 === 0)
        buf = Buffer.from(Array.from({ length: Math.floor(r() * 600) }, () => Math.floor(r() * 256)));
      else {
        buf = Buffer.from(seeds[i % seeds.length]!);
        for (let k = 0; k < 1 + Math.floor(r() * 8); k++)
          buf[Math.floor(r() * buf.length)] = Math.floor(r() * 256);
        if (r() < 0.2) buf = buf.subarray(0, Math.floor(r() * buf.length));
      }
      let p: ReturnType<typeof decodeDhcp>;
      try {
        p = decodeDhcp(buf);
      } catch (err) {
        assert.ok(err instanceof DhcpPacketError, `case ${i}: ${(err as Error).stack}`);
        continue;
      }
      decoded++;
      for (const pol of pols) {
        for (const port of ["dhcp", "pxe"] as const) {
          const a = answer(p, port, pol);
          if (a.reply) {
            try {
              encodeDhcp(a.reply);
            } catch (err) {
              assert.ok(err instanceof DhcpPacketError, `case ${i}: ${(err as Error).stack}`);
            }
          }
        }
      }
    }
    assert.ok(decoded > 1000, `enough mutated packets still decode to exercise answer(): ${decoded}`);
  });

  it("the running server survives 3000 malformed datagrams and still answers a PXE client", async () => {
    const client = createSocket("udp4");
    await new Promise<void>((res) => client.bind(0, "127.0.0.1", () => res()));
    const s2 = await startDhcpServer({
      policy: policy({ serverIp: "127.0.0.1" }),
      address: "127.0.0.1",
      dhcpPort: 0,
      pxePort: false,
      broadcast: { address: "127.0.0.1", port: client.address().port },
    });
    try {
      const r = rng(5);
      const good = pxeRequest({ mac: MAC, arch: 7 });
      for (let i = 0; i < 3000; i++) {
        const buf = i % 2 ? Buffer.from(good) : Buffer.alloc(Math.floor(r() * 400));
        for (let k = 0; k < 6; k++) buf[Math.floor(r() * buf.length)] = Math.floor(r() * 256);
        client.send(buf, s2.dhcpPort!, "127.0.0.1");
        // Paced: a flood only tests the kernel's socket buffer.
        if (i % 20 === 0) await new Promise((res) => setTimeout(res, 1));
      }
      const got = new Promise<Buffer>((res) => {
        client.on("message", (m) => {
          try {
            if (decodeDhcp(m).xid === 0x7777) res(m);
          } catch {}
        });
      });
      // Retransmit as a firmware does, in case loopback dropped one under the load.
      const resend = setInterval(
        () => client.send(pxeRequest({ mac: MAC, arch: 7, xid: 0x7777 }), s2.dhcpPort!, "127.0.0.1"),
        200,
      );
      const reply = decodeDhcp(await got.finally(() => clearInterval(resend)));
      assert.equal(reply.file, "ipxe.efi");
      assert.ok(s2.stats().malformed > 0);
    } finally {
      await s2.close();
      client.close();
    }
  });
});
