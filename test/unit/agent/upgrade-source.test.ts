import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { upgradeSourceRef } from "../../../src/agent/upgrade-source.js";

const exists = (paths: string[]) => (p: string) => paths.includes(p);

describe("upgradeSourceRef (upstream spellings → our references)", () => {
  it("reads oci:HOST/REPO:TAG and oci://… as registry images, as Kairos does", () => {
    const none = exists([]);
    assert.equal(upgradeSourceRef("oci:quay.io/kairos/debian:v3", none), "docker://quay.io/kairos/debian:v3");
    assert.equal(upgradeSourceRef("oci://127.0.0.1:5000/k:v2", none), "docker://127.0.0.1:5000/k:v2");
    assert.equal(
      upgradeSourceRef("docker:quay.io/kairos/debian:v3", none),
      "docker://quay.io/kairos/debian:v3",
    );
    assert.equal(upgradeSourceRef("quay.io/kairos/debian:v3", none), "docker://quay.io/kairos/debian:v3");
    assert.equal(upgradeSourceRef("docker://localhost:5000/x", none), "docker://localhost:5000/x");
  });

  it("keeps oci:DIR[:TAG] a local layout when DIR exists", () => {
    const has = exists(["/var/lib/layout", "./img"]);
    assert.equal(upgradeSourceRef("oci:/var/lib/layout:v2", has), "oci:/var/lib/layout:v2");
    assert.equal(upgradeSourceRef("oci:/var/lib/layout", has), "oci:/var/lib/layout");
    assert.equal(upgradeSourceRef("oci:./img", has), "oci:./img");
  });

  it("passes our other transports through", () => {
    for (const r of ["oci-archive:/a.tar", "docker-archive:/b.tar:x:y", "docker-daemon:x:y", "dir:/rootfs"]) {
      assert.equal(upgradeSourceRef(r, exists([])), r);
    }
  });

  it("refuses what it cannot read, with a hint", () => {
    assert.throws(() => upgradeSourceRef("", exists([])), /no upgrade source given/);
    assert.throws(() => upgradeSourceRef("file:/x.img", exists([])), /raw image files .* not supported/);
    assert.throws(() => upgradeSourceRef("http://x/y", exists([])), /transport we do not read/);
  });
});
