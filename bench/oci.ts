/**
 * Image engine benchmarks (issues #2 and #13) on the three image shapes of bench/shapes.ts
 * (the default base, a 3-layer GNU tar pax image, the base plus 100 000 small files). Each
 * shape is pushed with skopeo to a local registry on 127.0.0.1, then per round, ours and the
 * native tools alternate so both see the same host load:
 *   pull + unpack   `kairos image unpack docker://… DIR`
 *                   vs `skopeo copy docker://… oci:L:latest` + `umoci unpack --image L:latest B`
 *   flatten         `kairos image unpack oci:… DIR` vs GNU tar -x of the same layers in turn
 *   peak RSS        of `kairos image pull docker://… oci:…` (must not grow with image size)
 * Wall and CPU (user+sys, GNU time) beside each other; best of `rounds`.
 * Run: node --import tsx bench/oci.ts [rounds=2] [base,pax,small]
 */
import { mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDefaultBase } from "../src/base/index.js";
import { run } from "../src/sys/index.js";
import { startRegistry } from "../test/helpers/registry.js";
import { best, loadLine, report, sum, type Timing, timed } from "./lib.js";
import { layerBlobs, makeShapes } from "./shapes.js";

const rounds = Number(process.argv[2] ?? 2);
const only = process.argv[3]?.split(",");
const kairos = join(import.meta.dirname, "..", "bin", "kairos");
const work = join(tmpdir(), `kairos-bench-oci-${process.pid}`);
const fresh = async (name: string) => {
  const p = join(work, name);
  await rm(p, { recursive: true, force: true });
  return p;
};

const base = await ensureDefaultBase();
const shapes = await makeShapes(base);
const registry = await startRegistry();
const lines: string[] = [];
/** Print a line that report() has not printed already, and keep it for the summary. */
const say = (line: string) => {
  console.log(line);
  lines.push(line);
};
try {
  console.log(`${new Date().toISOString()} rounds: ${rounds}, load ${loadLine()}`);
  for (const [name, layout] of Object.entries(shapes)) {
    if (only && !only.includes(name)) continue;
    const ref = `docker://${registry.host}/bench/${name}:latest`;
    await run("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", layout, ref]);
    const blobs = await layerBlobs(layout);
    console.log(`\n== ${name}: ${layout} (${blobs.length} layers) pushed to ${ref}; load ${loadLine()}`);

    const ours: Timing[] = [];
    const native: Timing[] = [];
    const flatOurs: Timing[] = [];
    const flatTar: Timing[] = [];
    const pulls: Timing[] = [];
    for (let i = 0; i < rounds; i++) {
      ours.push(await timed(kairos, ["-q", "image", "unpack", ref, await fresh("ours")]));
      await rm(join(work, "ours"), { recursive: true, force: true });
      const oci = await fresh("layout");
      const skopeo = await timed("skopeo", [
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        ref,
        `oci:${oci}:latest`,
      ]);
      const umoci = await timed("umoci", ["unpack", "--image", `${oci}:latest`, await fresh("bundle")]);
      native.push(sum(skopeo, umoci));
      await rm(join(work, "bundle"), { recursive: true, force: true });

      flatOurs.push(await timed(kairos, ["-q", "image", "unpack", layout, await fresh("flat-ours")]));
      await rm(join(work, "flat-ours"), { recursive: true, force: true });
      const target = await fresh("flat-tar");
      await mkdir(target);
      const steps: Timing[] = [];
      for (const blob of blobs) {
        const args = ["-xzpf", blob, "-C", target, "--numeric-owner", "--xattrs", "--xattrs-include=*"];
        steps.push(await timed("tar", args));
      }
      flatTar.push(sum(...steps));
      await rm(target, { recursive: true, force: true });

      pulls.push(await timed(kairos, ["-q", "image", "pull", ref, `oci:${await fresh("pulled")}:latest`]));
    }
    say(`[${name}] load ${loadLine()}`);
    lines.push(
      report(`[${name}] pull+unpack (registry → rootfs dir)`, best(ours), best(native), "skopeo+umoci", 0.8),
    );
    lines.push(
      report(
        `[${name}] flatten oci layout → rootfs dir`,
        best(flatOurs),
        best(flatTar),
        "GNU tar -x per layer",
        1.0,
      ),
    );
    const rss = Math.max(...pulls.map((t) => t.maxRssMiB));
    const pull = best(pulls);
    say(
      `[${name}] pull docker:// → oci: ${pull.seconds.toFixed(1)} s (cpu ${pull.cpuSeconds.toFixed(1)} s), ` +
        `peak RSS ${rss.toFixed(0)} MiB (goal ≤ 150 MiB: ${rss <= 150 ? "met" : "NOT met"})`,
    );
  }
  console.log(
    `\nsummary (${new Date().toISOString()}, load at end ${loadLine()}, best of ${rounds}):\n${lines.join("\n")}`,
  );
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
