import { Duplex } from "node:stream";
import { ToolFailedError } from "./errors.js";
import { formatCommand, start } from "./run.js";

/**
 * An external filter program (e.g. `gzip -dc`) as a Duplex stream: what is written goes to its
 * stdin, what it prints comes out. It runs in its own process, so decompression proceeds on
 * another core while this thread parses and writes. A non-zero exit becomes a stream error
 * carrying the command and its stderr tail; destroying the stream kills the process.
 */
export function filterProcess(tool: string, args: readonly string[]): Duplex {
  const p = start(tool, args);
  let exited = false;
  let stdoutEnded = false;
  let failure: Error | undefined;
  const duplex = new Duplex({
    readableHighWaterMark: 1 << 20,
    write(chunk: Buffer, _enc, cb) {
      if (p.stdin.write(chunk)) cb();
      else p.stdin.once("drain", () => cb());
    },
    final(cb) {
      p.stdin.end(() => cb());
    },
    read() {
      p.stdout.resume();
    },
    destroy(err, cb) {
      if (!exited) p.kill("SIGKILL");
      cb(err);
    },
  });
  const maybeEnd = () => {
    if (exited && stdoutEnded && !failure) duplex.push(null);
  };
  p.stdout.on("data", (c: Buffer) => {
    if (!duplex.push(c)) p.stdout.pause();
  });
  p.stdout.on("end", () => {
    stdoutEnded = true;
    maybeEnd();
  });
  p.done.then(
    () => {
      exited = true;
      maybeEnd();
    },
    (e: unknown) => {
      exited = true;
      failure =
        e instanceof Error ? e : new ToolFailedError(formatCommand(tool, args), null, null, String(e));
      duplex.destroy(failure);
    },
  );
  return duplex;
}
