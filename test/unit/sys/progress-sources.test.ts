import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { rootfsFromImage, rootfsFromTarFile } from "../../../src/artifacts/source.js";
import { imageReadTask, imageView } from "../../../src/factory/init.js";
import { flattenToDirectory } from "../../../src/oci/flatten.js";
import { writeImage } from "../../../src/oci/index.js";
import type { Progress } from "../../../src/sys/index.js";
import { layerTar } from "../../helpers/layers.js";
import { tempDir } from "../../helpers/tmp.js";
import { twoLayerImage } from "../oci/fixtures.js";

interface Recorded {
  name: string;
  total?: number;
  updates: number[];
  ended?: "ok" | "fail";
}

/** A Progress that records every task's total and updates. */
function recorder(): Progress & { tasks: Recorded[] } {
  const tasks: Recorded[] = [];
  return {
    mode: "silent",
    tasks,
    info() {},
    task(name, total) {
      const r: Recorded = { name, total, updates: [] };
      tasks.push(r);
      return {
        update: (n) => r.updates.push(n),
        finish: () => {
          r.ended = "ok";
        },
        fail: () => {
          r.ended = "fail";
        },
      };
    },
  };
}

test("unpack counts compressed blob bytes per layer, up to each layer's size from the manifest", async (t) => {
  const img = await twoLayerImage();
  t.after(() => img.close());
  const layers = await img.layers();
  const perLayer = layers.map(() => 0);
  const totals: number[] = [];
  await flattenToDirectory(img, join(await tempDir(t), "out"), {
    onBytes: (e) => {
      perLayer[e.layer]! += e.bytes;
      totals.push(e.done);
    },
  });
  assert.deepEqual(
    perLayer,
    layers.map((l) => l.size),
  );
  assert.equal(totals.at(-1), layers[0]!.size + layers[1]!.size);
  // Movement while a big layer streams is what test/integration/progress-cli.test.ts watches.
});

test("a rootfs from an image knows its total up front and counts to it as it streams", async (t) => {
  const img = await twoLayerImage();
  t.after(() => img.close());
  const src = await rootfsFromImage(img);
  const sizes = (await img.layers()).map((l) => l.size);
  assert.equal(src.size, sizes[0]! + sizes[1]!);
  const seen: number[] = [];
  const stream = await src.open((n) => seen.push(n));
  assert.equal(stream.kind, "entries");
  if (stream.kind === "entries") for await (const _ of stream.entries);
  assert.equal(seen.at(-1), src.size);
});

test("a rootfs tarball counts its file bytes against its size", async (t) => {
  const file = join(await tempDir(t), "rootfs.tar");
  await writeFile(file, await layerTar([{ path: "etc" }, { path: "etc/x", content: "x".repeat(5000) }]));
  const src = await rootfsFromTarFile(file);
  const seen: number[] = [];
  const stream = await src.open((n) => seen.push(n));
  if (stream.kind === "tar") for await (const _ of stream.bytes);
  assert.equal(seen.at(-1), src.size);
});

test("copies count against each blob's size: oci layout and docker-archive (tar stored uncompressed)", async (t) => {
  const img = await twoLayerImage();
  t.after(() => img.close());
  const dir = await tempDir(t);
  for (const dest of [`oci:${dir}/layout:v1`, `docker-archive:${dir}/d.tar:example/os:1`]) {
    const p = recorder();
    await writeImage(img, dest, { progress: p });
    const layerTasks = p.tasks.filter((r) => r.name.startsWith("layer "));
    assert.equal(layerTasks.length, 2, dest);
    for (const r of layerTasks) {
      assert.ok(r.total && r.total > 0, `${dest} ${r.name} has a total`);
      assert.equal(r.updates.at(-1), r.total, `${dest} ${r.name} counted to its total`);
      assert.equal(r.ended, "ok");
    }
  }
});

test("the factory's full reads of an image count compressed bytes against the manifest's sizes", async (t) => {
  const img = await twoLayerImage();
  t.after(() => img.close());
  const p = recorder();
  const { task, onBytes } = await imageReadTask(p, "check the base", img);
  await imageView(img, onBytes);
  task?.finish();
  const r = p.tasks[0]!;
  const sizes = (await img.layers()).map((l) => l.size);
  assert.equal(r.total, sizes[0]! + sizes[1]!);
  assert.equal(r.updates.at(-1), r.total);
  assert.deepEqual(await imageReadTask(undefined, "x", img), {}, "no progress, no work");
});
