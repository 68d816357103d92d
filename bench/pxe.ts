/**
 * PXE server load test and throughput, all on 127.0.0.1 or inside a network namespace of our
 * own (dnsmasq's TFTP port is fixed at 69):
 *  1. 200 simulated PXE clients at once: DISCOVER → OFFER, TFTP of ipxe.efi (blksize 1468),
 *     HTTP GET of an 8 MiB kernel; all must be served. Total time, server peak RSS.
 *  2. TFTP throughput, ipxe.efi and a 30 MB file, ours vs dnsmasq, the same client (busybox
 *     tftp) and block size (1468, no windowsize: dnsmasq has none). Goal ≥ 1.0×.
 *  3. HTTP throughput of a squashfs, ours vs `python3 -m http.server`, client curl. Goal ≥ 1.0×.
 * Usage: node --import tsx bench/pxe.ts
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { chmodSync, copyFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { decodeDhcp } from "../src/netboot/index.js";
import { pxeRequest, tftpGet } from "../test/helpers/netboot-client.js";

const SERVER = resolve(import.meta.dirname, "pxe-server.ts");
const FLOOR = resolve(import.meta.dirname, "tftp-floor.ts");
const IPXE = readFileSync("/usr/lib/ipxe/ipxe.efi");
const CLIENTS = 200;
const RUNS = Number(process.env.PXE_BENCH_RUNS ?? 7);

function startChild(
  args: string[],
  netns?: string,
  script = SERVER,
): Promise<{ child: ChildProcess; ports: Record<string, number> }> {
  const cmd = netns ? ["ip", "netns", "exec", netns, process.execPath] : [process.execPath];
  // The node flags and malloc settings bin/kairos runs the CLI with (`kairos netboot`).
  const child = spawn(
    cmd[0]!,
    [...cmd.slice(1), "--max-semi-space-size=8", "--import", "tsx", script, ...args],
    {
      env: {
        ...process.env,
        MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? "4194304",
        MALLOC_TRIM_THRESHOLD_: process.env.MALLOC_TRIM_THRESHOLD_ ?? "536870912",
      },
      stdio: ["pipe", "pipe", "inherit"],
      cwd: resolve(import.meta.dirname, ".."),
    },
  );
  return new Promise((res, rej) => {
    child.stdout!.once("data", (c: Buffer) => res({ child, ports: JSON.parse(c.toString()) }));
    child.once("exit", (code) => rej(new Error(`pxe-server exited ${code}`)));
  });
}

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function stopChild(c: ChildProcess): Promise<void> {
  const done = new Promise((r) => c.once("exit", r));
  c.stdin!.end();
  const t = setTimeout(() => c.kill("SIGKILL"), 5000);
  await done;
  clearTimeout(t);
}

/** CPU seconds (user + system) a process has used so far (/proc/PID/stat, 100 ticks a second). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / 100;
}

interface Side {
  /** Client command (one transfer). */
  cmd: string[];
  /** The server's pid, for its CPU time. */
  pid: number;
}

interface Sample {
  /** Best and median wall seconds of one transfer. */
  best: number;
  median: number;
  /** Server CPU seconds per transfer (total over the rounds ÷ rounds). */
  cpu: number;
}

/** Run the sides in turn RUNS times each (the same host load for all); wall and server CPU. */
function compareAll(sides: Side[], check: (stdout: string) => void): Sample[] {
  const walls: number[][] = sides.map(() => []);
  const cpu = sides.map(() => 0);
  for (let i = 0; i < RUNS; i++) {
    for (const [k, side] of sides.entries()) {
      const c0 = cpuSeconds(side.pid);
      const t0 = process.hrtime.bigint();
      const r = spawnSync(side.cmd[0]!, side.cmd.slice(1), { encoding: "utf8", timeout: 300_000 });
      walls[k]!.push(Number(process.hrtime.bigint() - t0) / 1e9);
      cpu[k]! += cpuSeconds(side.pid) - c0;
      if (r.status !== 0) throw new Error(`${side.cmd.join(" ")} failed: ${r.stderr}`);
      check(r.stdout);
    }
  }
  const sample = (k: number): Sample => {
    const w = [...walls[k]!].sort((x, y) => x - y);
    return { best: w[0]!, median: w[Math.floor(w.length / 2)]!, cpu: cpu[k]! / RUNS };
  };
  return sides.map((_, k) => sample(k));
}

function compare(a: Side, b: Side, check: (stdout: string) => void): [Sample, Sample] {
  const [x, y] = compareAll([a, b], check);
  return [x!, y!];
}

/** "ours 61 MB/s (median 55), CPU 410 ms" for a transfer of `mb` megabytes. */
function describe(name: string, s: Sample, mb: number): string {
  return `${name} ${(mb / s.best).toFixed(1)} MB/s (median ${(mb / s.median).toFixed(1)}), server CPU ${(s.cpu * 1000).toFixed(0)} ms`;
}

function verdict(theirs: Sample, mine: Sample): string {
  const r = theirs.best / mine.best;
  const rm = theirs.median / mine.median;
  return `ratio ${r.toFixed(2)}× best, ${rm.toFixed(2)}× median, CPU ${(theirs.cpu / mine.cpu).toFixed(2)}× (goal ≥ 1.0×: ${r >= 1 && rm >= 1 ? "met" : "NOT met"})`;
}

async function loadTest(dir: string): Promise<string> {
  const bus = createSocket("udp4");
  await new Promise<void>((r) => bus.bind(0, "127.0.0.1", () => r()));
  const { child, ports } = await startChild(["netboot", dir, String(bus.address().port)]);
  const waiting = new Map<number, (file: string) => void>();
  bus.on("message", (m) => {
    try {
      const p = decodeDhcp(m);
      waiting.get(p.xid)?.(p.file);
    } catch {}
  });
  const kernel = readFileSync(join(dir, "kairos-kernel"));
  const one = async (i: number): Promise<void> => {
    const xid = 0x10000 + i;
    const mac = `52:54:00:00:${((i >> 8) & 255).toString(16).padStart(2, "0")}:${(i & 255).toString(16).padStart(2, "0")}`;
    const file = await new Promise<string>((res, rej) => {
      let tries = 0;
      const send = () => {
        if (++tries > 10) return rej(new Error(`client ${i}: no OFFER`));
        bus.send(pxeRequest({ mac, arch: 7, xid }), ports.dhcp!, "127.0.0.1");
      };
      const timer = setInterval(send, 1000);
      waiting.set(xid, (f) => {
        clearInterval(timer);
        waiting.delete(xid);
        res(f);
      });
      send();
    });
    if (file !== "ipxe.efi") throw new Error(`client ${i}: offered '${file}'`);
    const got = await tftpGet({
      host: "127.0.0.1",
      port: ports.tftp!,
      file,
      options: { blksize: "1468", tsize: "0" },
      timeoutMs: 120_000,
    });
    if (!got.data.equals(IPXE)) throw new Error(`client ${i}: ipxe.efi differs`);
    const body = Buffer.from(
      await (await fetch(`http://127.0.0.1:${ports.http}/kairos-kernel`)).arrayBuffer(),
    );
    if (!body.equals(kernel)) throw new Error(`client ${i}: kernel differs`);
  };
  const t0 = Date.now();
  const results = await Promise.allSettled(Array.from({ length: CLIENTS }, (_, i) => one(i)));
  const seconds = (Date.now() - t0) / 1000;
  const rss = peakRssMiB(child.pid!);
  await stopChild(child);
  bus.close();
  const failed = results.filter((r) => r.status === "rejected");
  for (const f of failed.slice(0, 3)) console.error((f as PromiseRejectedResult).reason);
  return `load: ${CLIENTS - failed.length}/${CLIENTS} clients served (DISCOVER→OFFER, TFTP ipxe.efi ${(IPXE.length / 1024).toFixed(0)} KiB, HTTP kernel ${(kernel.length / 1048576).toFixed(0)} MiB) in ${seconds.toFixed(1)} s; server peak RSS ${rss.toFixed(0)} MiB`;
}

async function tftpBench(root: string): Promise<string[]> {
  const ns = `kpxe-bench-${process.pid}`;
  spawnSync("ip", ["netns", "del", ns]);
  if (spawnSync("ip", ["netns", "add", ns]).status !== 0)
    throw new Error("cannot create a network namespace (root needed)");
  const lines: string[] = [];
  let dnsmasq: ChildProcess | undefined;
  let ours: ChildProcess | undefined;
  let floor: ChildProcess | undefined;
  try {
    spawnSync("ip", ["-n", ns, "link", "set", "lo", "up"]);
    dnsmasq = spawn(
      "ip",
      [
        "netns",
        "exec",
        ns,
        "dnsmasq",
        "--no-daemon",
        "--conf-file=/dev/null",
        "--port=0",
        "--enable-tftp",
        `--tftp-root=${root}`,
        "--interface=lo",
        "--bind-interfaces",
        "--user=root",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    await new Promise((r) => setTimeout(r, 1000));
    const o = await startChild(["tftp", root, "6969"], ns);
    ours = o.child;
    const f = await startChild([root, "6970"], ns, FLOOR);
    floor = f.child;
    for (const [file, size] of [
      ["ipxe.efi", IPXE.length],
      ["big.bin", 30_000_000],
    ] as const) {
      const out = join(root, "..", "out.bin");
      const get = (port: number) => [
        "ip",
        "netns",
        "exec",
        ns,
        "busybox",
        "tftp",
        "-g",
        "-b",
        "1468",
        "-r",
        file,
        "-l",
        out,
        "127.0.0.1",
        String(port),
      ];
      const check = () => {
        if (readFileSync(out).length !== size) throw new Error(`${file}: wrong size`);
      };
      const [theirs, mine, bound] = compareAll(
        [
          { cmd: get(69), pid: dnsmasq.pid! },
          { cmd: get(6969), pid: o.ports.pid! },
          { cmd: get(6970), pid: f.ports.pid! },
        ],
        check,
      ) as [Sample, Sample, Sample];
      const mb = size / 1e6;
      lines.push(
        `tftp ${file} (${mb.toFixed(1)} MB, blksize 1468, busybox tftp, ${RUNS} rounds): ${describe("ours", mine, mb)}; ${describe("dnsmasq", theirs, mb)}; ${verdict(theirs, mine)}`,
        `  node floor (bench/tftp-floor.ts): ${describe("floor", bound, mb)}; floor vs dnsmasq ${(theirs.best / bound.best).toFixed(2)}× best, ${(theirs.median / bound.median).toFixed(2)}× median; ours vs floor ${(bound.best / mine.best).toFixed(2)}× best, ${(bound.median / mine.median).toFixed(2)}× median`,
      );
    }
  } finally {
    if (ours) await stopChild(ours);
    if (floor) await stopChild(floor);
    dnsmasq?.kill("SIGKILL");
    spawnSync("ip", ["netns", "del", ns]);
  }
  return lines;
}

async function httpBench(dir: string, file: string): Promise<string> {
  const { child, ports } = await startChild(["netboot", dir, "9"]);
  const py = spawn("python3", ["-m", "http.server", "--bind", "127.0.0.1", "18777", "--directory", dir], {
    stdio: "ignore",
  });
  try {
    await new Promise((r) => setTimeout(r, 1500));
    const size = readFileSync(join(dir, file)).length;
    // The body goes to /dev/null: written to a file, curl's own page-cache writes set the pace
    // (~400 MB/s here) and hide the servers' difference. curl reports the bytes it received.
    const check = (stdout: string) => {
      if (Number(stdout.trim()) !== size) throw new Error(`HTTP: got ${stdout.trim()} bytes, want ${size}`);
    };
    const curl = (port: number) => [
      "curl",
      "-sf",
      "-o",
      "/dev/null",
      "-w",
      "%{size_download}",
      `http://127.0.0.1:${port}/${file}`,
    ];
    const [theirs, mine] = compare(
      { cmd: curl(18777), pid: py.pid! },
      { cmd: curl(ports.http!), pid: ports.pid! },
      check,
    );
    const mb = size / 1e6;
    return `http ${file} (${mb.toFixed(0)} MB, curl, ${RUNS} rounds): ${describe("ours", mine, mb)}; ${describe("python3 -m http.server", theirs, mb)}; ${verdict(theirs, mine)}`;
  } finally {
    py.kill("SIGKILL");
    await stopChild(child);
  }
}

const work = await mkdtemp(join(tmpdir(), "kairos-bench-pxe-"));
try {
  chmodSync(work, 0o755);
  const dir = join(work, "nb");
  const root = join(work, "tftp");
  for (const d of [dir, root]) spawnSync("mkdir", ["-m", "755", "-p", d]);
  writeFileSync(join(dir, "kairos-kernel"), randomBytes(8 << 20));
  writeFileSync(join(dir, "kairos-initrd"), randomBytes(5 << 20));
  // The real squashfs of the PXE e2e fixture when it is cached, else 30 MB of random bytes.
  const fixture = spawnSync(
    "sh",
    ["-c", "ls -d ~/.cache/kairos-ts/test/netboot-files-*/kairos.squashfs 2>/dev/null | head -n1"],
    { encoding: "utf8" },
  ).stdout.trim();
  if (fixture && existsSync(fixture)) copyFileSync(fixture, join(dir, "kairos.squashfs"));
  else writeFileSync(join(dir, "kairos.squashfs"), randomBytes(30_000_000));
  copyFileSync("/usr/lib/ipxe/ipxe.efi", join(root, "ipxe.efi"));
  writeFileSync(join(root, "big.bin"), randomBytes(30_000_000));
  for (const f of ["ipxe.efi", "big.bin"]) chmodSync(join(root, f), 0o644);
  // PXE_BENCH=load,tftp,http (default all) picks the parts.
  const parts = (process.env.PXE_BENCH ?? "load,tftp,http").split(",");
  const lines = [
    ...(parts.includes("load") ? [await loadTest(dir)] : []),
    ...(parts.includes("tftp") ? await tftpBench(root) : []),
    ...(parts.includes("http") ? [await httpBench(dir, "kairos.squashfs")] : []),
  ];
  console.log(lines.join("\n"));
} finally {
  await rm(work, { recursive: true, force: true });
}
