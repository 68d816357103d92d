import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, start } from "../../src/sys/index.js";

/** A real Podman API service on a private unix socket, with its own storage. */
export interface TestDaemon {
  socket: string;
  /** Run a podman command against this daemon's storage. */
  podman(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

export async function startPodmanService(): Promise<TestDaemon> {
  const dir = await mkdtemp(join(tmpdir(), "kairos-podman-"));
  const socket = join(dir, "podman.sock");
  const base = [
    "--root",
    join(dir, "root"),
    "--runroot",
    join(dir, "runroot"),
    "--storage-driver",
    "vfs",
    "--cgroup-manager",
    "cgroupfs",
    "--events-backend",
    "file",
    "--tmpdir",
    join(dir, "tmp"),
  ];
  const proc = start("podman", [...base, "system", "service", "--time=120", `unix://${socket}`]);
  proc.stdin.end();
  proc.stdout.resume();
  let exited = false;
  proc.done
    .catch(() => {})
    .finally(() => {
      exited = true;
    });
  const stop = async () => {
    proc.kill("SIGTERM");
    await proc.done.catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  const http = await import("node:http");
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const r = http.request({ socketPath: socket, path: "/_ping" }, (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      });
      r.on("error", () => resolve(false));
      r.end();
    });
    if (ok) break;
    if (exited || Date.now() > deadline) {
      const err = await proc.done.then(
        () => new Error("podman exited"),
        (e: Error) => e,
      );
      await stop();
      throw new Error(`podman service did not start: ${err.message}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    socket,
    podman: async (args) => (await run("podman", [...base, ...args])).stdout,
    stop,
  };
}
