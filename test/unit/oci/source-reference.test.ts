import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { resolveSourceReference, type SourceProbe } from "../../../src/oci/index.js";

/**
 * The one rule for image sources as Kairos users write them: AuroraBoot's `container_image`
 * and `kairos-agent upgrade --source` (both read by kairos-sdk's NewSrcFromURI upstream).
 * Each row: the value, the directories that exist, and the reference we read it as.
 */
const TABLE: [value: string, dirs: string[], ref: string][] = [
  // registry images, as upstream
  ["docker://quay.io/kairos/ubuntu:24.04", [], "docker://quay.io/kairos/ubuntu:24.04"],
  ["docker:quay.io/kairos/ubuntu:24.04", [], "docker://quay.io/kairos/ubuntu:24.04"],
  ["oci://localhost:5000/kairos/test:v1", [], "docker://localhost:5000/kairos/test:v1"],
  ["oci://127.0.0.1:5000/k:v2", [], "docker://127.0.0.1:5000/k:v2"],
  ["oci:quay.io/kairos/debian:v3", [], "docker://quay.io/kairos/debian:v3"],
  ["quay.io/kairos/ubuntu:24.04", [], "docker://quay.io/kairos/ubuntu:24.04"],
  ["localhost:5000/x:1", [], "docker://localhost:5000/x:1"],
  ["ubuntu:24.04", [], "docker://ubuntu:24.04"],
  ["  quay.io/a/b:1  ", [], "docker://quay.io/a/b:1"],
  // oci:X is skopeo's local layout when X is a directory here or looks like a path
  ["oci:build/layout:latest", ["build/layout"], "oci:build/layout:latest"],
  ["oci:/var/lib/layout:v2", ["/var/lib/layout"], "oci:/var/lib/layout:v2"],
  ["oci:/var/lib/layout", ["/var/lib/layout"], "oci:/var/lib/layout"],
  ["oci:/nonexistent", [], "oci:/nonexistent"],
  ["oci:./img", [], "oci:./img"],
  ["oci:../l:v2", [], "oci:../l:v2"],
  ["oci:quay.io/a/b:1", ["build"], "docker://quay.io/a/b:1"],
  // local sources
  ["dir:/srv/rootfs", [], "dir:/srv/rootfs"],
  ["ocifile:/tmp/i.tar", [], "docker-archive:/tmp/i.tar"],
  ["ocifile:///images/kairos.tar", [], "docker-archive:/images/kairos.tar"],
  // skopeo transports pass through
  ["oci-archive:/x.tar", [], "oci-archive:/x.tar"],
  ["docker-archive:/x.tar:@0", [], "docker-archive:/x.tar:@0"],
  ["docker-archive:/b.tar:x:y", [], "docker-archive:/b.tar:x:y"],
  ["docker-daemon:img:1", [], "docker-daemon:img:1"],
];

const probe = (dirs: string[]): SourceProbe => ({ isDirectory: (p) => dirs.includes(p) });

describe("resolveSourceReference: one rule for container_image and upgrade --source", () => {
  for (const [value, dirs, ref] of TABLE) {
    it(`${value}${dirs.length ? ` (with ${dirs.join(", ")})` : ""} → ${ref}`, () => {
      assert.equal(resolveSourceReference(value, probe(dirs)).ref, ref);
    });
  }
  it("says which reading of oci: it took", () => {
    assert.match(
      resolveSourceReference("oci:build/layout:latest", probe(["build/layout"])).reading,
      /local OCI layout build\/layout \(tag latest\)/,
    );
    assert.match(
      resolveSourceReference("oci:quay.io/a/b:1", probe([])).reading,
      /no directory quay\.io\/a\/b here/,
    );
  });
  it("uses the local Docker daemon for docker:// only when asked and when one is there", () => {
    const up = { isDirectory: () => false, dockerDaemon: () => true };
    const down = { isDirectory: () => false, dockerDaemon: () => false };
    assert.equal(
      resolveSourceReference("docker://byoi", up, { preferDaemon: true }).ref,
      "docker-daemon:byoi",
    );
    assert.equal(
      resolveSourceReference("docker:byoi:1", up, { preferDaemon: true }).ref,
      "docker-daemon:byoi:1",
    );
    assert.equal(resolveSourceReference("docker://byoi", up).ref, "docker://byoi");
    assert.equal(resolveSourceReference("docker://byoi", down, { preferDaemon: true }).ref, "docker://byoi");
  });
  it("refuses what it cannot read, with the reason", () => {
    const none = probe([]);
    assert.throws(
      () => resolveSourceReference("oci:Quay.io/UPPER:1", none),
      /not a valid repository path component/,
    );
    assert.throws(() => resolveSourceReference("", none), /empty image reference/);
    assert.throws(() => resolveSourceReference("dir:", none), /no path/);
    assert.throws(() => resolveSourceReference("ocifile:", none), /no path/);
    assert.throws(() => resolveSourceReference("file:/x.img", none), /raw filesystem image .* not supported/);
    assert.throws(() => resolveSourceReference("http://x/y", none), /transport we do not read/);
  });
});
