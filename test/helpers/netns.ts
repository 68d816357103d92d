/**
 * A private network for boot tests: a network namespace with a bridge (10.77.0.1/24) and tap
 * devices on it, so QEMU guests, DHCP and PXE servers talk to each other and to nothing else.
 * Processes started in it are stopped (SIGTERM, then SIGKILL) and the namespace is deleted by `destroy()`, which the
 * tests call from `t.after` so it also runs on failure.
 */
import { spawnSync } from "node:child_process";
import { createWriteStream } from "node:fs";
import { type Started, start } from "../../src/sys/index.js";

export const BRIDGE_IP = "10.77.0.1";

function ip(args: string[]): void {
  const r = spawnSync("ip", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`ip ${args.join(" ")}: ${r.stderr.trim()}`);
}

export interface Netns {
  name: string;
  /** Start `cmd` inside the namespace; its output goes to `logFile`. */
  spawn(cmd: string, args: string[], logFile: string): Started & { output(): string };
  destroy(): Promise<void>;
}

export function createNetns(prefix: string, taps: string[]): Netns {
  const name = `${prefix}-${process.pid}`;
  spawnSync("ip", ["netns", "del", name]);
  ip(["netns", "add", name]);
  const children: Started[] = [];
  const ns: Netns = {
    name,
    spawn(cmd, args, logFile) {
      const child = start("ip", ["netns", "exec", name, cmd, ...args]);
      child.stdin.end();
      const log = createWriteStream(logFile);
      let text = "";
      const keep = (c: Buffer) => {
        log.write(c);
        text = (text + c.toString()).slice(-200_000);
      };
      child.stdout.on("data", keep);
      child.child.stderr?.on("data", keep);
      child.done.catch(() => {});
      children.push(child);
      return Object.assign(child, { output: () => text });
    },
    async destroy() {
      // SIGTERM first, so servers run their own cleanup (the netboot server removes its TFTP
      // directory under /tmp); SIGKILL whatever has not exited 5 s later.
      for (const c of children) c.kill("SIGTERM");
      await Promise.all(
        children.map(async (c) => {
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise<void>((r) => {
            timer = setTimeout(() => {
              c.kill("SIGKILL");
              r();
            }, 5000);
          });
          await Promise.race([c.done.catch(() => {}), late]);
          clearTimeout(timer);
          await c.done.catch(() => {});
        }),
      );
      // Anything else still inside (a stray child) goes too, then the namespace.
      const pids = spawnSync("ip", ["netns", "pids", name], { encoding: "utf8" })
        .stdout.split(/\s+/)
        .filter(Boolean);
      for (const p of pids) spawnSync("kill", ["-9", p]);
      spawnSync("ip", ["netns", "del", name]);
    },
  };
  try {
    ip(["-n", name, "link", "set", "lo", "up"]);
    ip(["-n", name, "link", "add", "br0", "type", "bridge"]);
    ip(["-n", name, "addr", "add", `${BRIDGE_IP}/24`, "dev", "br0"]);
    ip(["-n", name, "link", "set", "br0", "up"]);
    // A veth pair on the bridge gives it carrier before any guest opens its tap, so its address
    // is usable (and listed by os.networkInterfaces(), which skips links that are not running).
    ip(["-n", name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth1"]);
    ip(["-n", name, "link", "set", "veth0", "master", "br0"]);
    ip(["-n", name, "link", "set", "veth0", "up"]);
    ip(["-n", name, "link", "set", "veth1", "up"]);
    for (const tap of taps) {
      ip(["-n", name, "tuntap", "add", "dev", tap, "mode", "tap"]);
      ip(["-n", name, "link", "set", tap, "master", "br0"]);
      ip(["-n", name, "link", "set", tap, "up"]);
    }
  } catch (err) {
    spawnSync("ip", ["netns", "del", name]);
    throw err;
  }
  return ns;
}
