/**
 * Machine-wide exclusive locks for tests, held by a `flock` child process: the lock lives as
 * long as the child, so it is released when we close its stdin or when this process dies
 * (no stale lock files after a crash or a killed test run).
 */
import { spawn } from "node:child_process";

/** Take `flock --exclusive` on `path` (created if missing); resolves to the release function. */
export async function takeFileLock(path: string, timeoutMs: number, what = "lock"): Promise<() => void> {
  const child = spawn(
    "flock",
    [
      "--exclusive",
      "--timeout",
      String(Math.ceil(timeoutMs / 1000)),
      path,
      "sh",
      "-c",
      "echo locked; exec cat",
    ],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  let err = "";
  child.stderr.on("data", (c: Buffer) => {
    err += c.toString();
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout.once("data", () => resolve());
    child.once("exit", (code) =>
      reject(new Error(`could not take the ${what} ${path} (flock exit ${code}): ${err}`)),
    );
    child.once("error", reject);
  });
  child.removeAllListeners("exit");
  // Closing stdin ends `cat`, which releases the lock; if this process dies the pipe closes too.
  return () => {
    if (!child.stdin.destroyed) child.stdin.end();
  };
}
