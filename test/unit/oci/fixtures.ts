import type { BuiltImage } from "../../../src/oci/image.js";
import { appendLayer, emptyImage } from "../../../src/oci/mutate.js";
import { layerTar } from "../../helpers/layers.js";
import { chunked } from "../../helpers/tmp.js";

/** A small two-layer test image: the second layer deletes etc/a with a whiteout and adds etc/c. */
export async function twoLayerImage(): Promise<BuiltImage> {
  const l1 = await layerTar([
    { path: "etc" },
    { path: "etc/a", content: "alpha\n" },
    { path: "etc/b", content: "bravo\n", mode: 0o600 },
  ]);
  const l2 = await layerTar([
    { path: "etc" },
    { path: "etc/.wh.a", content: "" },
    { path: "etc/c", content: "charlie\n" },
  ]);
  const base = emptyImage({ os: "linux", architecture: "amd64" }, "test-image");
  const one = await appendLayer(base, chunked(l1, 100), { history: { created_by: "layer 1" } });
  return appendLayer(one, chunked(l2, 100), { history: { created_by: "layer 2" } });
}
