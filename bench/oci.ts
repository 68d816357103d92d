/**
 * Image engine benchmarks on the default base image (issue #2). Every figure is a ratio against
 * the native tools doing the same job in the same run:
 *   pull + unpack from a local registry   vs  skopeo copy → oci layout + umoci unpack
 *   flatten an oci layout into a dir      vs  GNU tar -x of the same layers, one after another
 *   peak RSS while pulling the whole image (must not grow with image size)
 * Run: node --import tsx bench/oci.ts [rounds]
 */
import { readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureDefaultBase } from "../src/base/index.js";
import { run } from "../src/sys/index.js";
import { startRegistry } from "../test/helpers/registry.js";
import { best, report, sum, type Timing, timed } from "./lib.js";

const rounds = Number(process.argv[2] ?? 2);
const kairos = join(import.meta.dirname, "..", "bin", "kairos");
const work = join(tmpdir(), `kairos-bench-oci-${process.pid}`);
const fresh = async (name: string) => {
  const p = join(work, name);
  await rm(p, { recursive: true, force: true });
  return p;
};

const base = await ensureDefaultBase();
const registry = await startRegistry();
try {
  const ref = `docker://${registry.host}/bench/debian:latest`;
  await run("skopeo", ["copy", "--quiet", "--dest-tls-verify=false", `oci:${base.ociLayout}:latest`, ref]);
  console.log(`image: ${base.ref} pushed to ${ref}`);

  const ours: Timing[] = [];
  const native: Timing[] = [];
  const flatOurs: Timing[] = [];
  const flatTar: Timing[] = [];
  const pulls: Timing[] = [];
  for (let i = 0; i < rounds; i++) {
    ours.push(await timed(kairos, ["-q", "image", "unpack", ref, await fresh("ours")]));
    const layout = await fresh("layout");
    const skopeo = await timed("skopeo", [
      "copy",
      "--quiet",
      "--src-tls-verify=false",
      ref,
      `oci:${layout}:latest`,
    ]);
    const umoci = await timed("umoci", ["unpack", "--image", `${layout}:latest`, await fresh("bundle")]);
    native.push(sum(skopeo, umoci));

    flatOurs.push(await timed(kairos, ["-q", "image", "unpack", base.ref, await fresh("flat-ours")]));
    const target = await fresh("flat-tar");
    await run("mkdir", [target]);
    const blobs = join(base.ociLayout, "blobs", "sha256");
    const manifestIndex = JSON.parse(await readFile(join(base.ociLayout, "index.json"), "utf8"));
    const manifest = JSON.parse(
      await readFile(join(blobs, manifestIndex.manifests[0].digest.slice(7)), "utf8"),
    );
    const steps: Timing[] = [];
    for (const layer of manifest.layers as { digest: string }[]) {
      steps.push(
        await timed("tar", [
          "-xzpf",
          join(blobs, layer.digest.slice(7)),
          "-C",
          target,
          "--numeric-owner",
          "--xattrs",
          "--xattrs-include=*",
        ]),
      );
    }
    flatTar.push(sum(...steps));

    pulls.push(await timed(kairos, ["-q", "image", "pull", ref, `oci:${await fresh("pulled")}:latest`]));
  }
  console.log(
    `layers: ${(await readdir(join(base.ociLayout, "blobs", "sha256"))).length - 2}, best of ${rounds} rounds`,
  );
  report("pull+unpack (registry → rootfs dir)", best(ours), best(native), "skopeo+umoci", 0.8);
  report("flatten oci layout → rootfs dir", best(flatOurs), best(flatTar), "GNU tar -x per layer", 1.2);
  const rss = Math.max(...pulls.map((t) => t.maxRssMiB));
  console.log(
    `peak RSS pulling the whole image: ${rss.toFixed(0)} MiB (goal ≤ 150 MiB: ${rss <= 150 ? "met" : "NOT met"})`,
  );
} finally {
  await registry.stop();
  await rm(work, { recursive: true, force: true });
}
