import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  formatReference,
  parseDockerReference,
  parsePlatform,
  parseReference,
  platformMatches,
} from "../../../src/oci/reference.js";
import { KairosError } from "../../../src/sys/index.js";

const D = `sha256:${"a".repeat(64)}`;

describe("docker references", () => {
  it("normalizes Docker Hub names like the docker CLI", () => {
    assert.deepEqual(parseDockerReference("debian"), {
      registry: "docker.io",
      repository: "library/debian",
      tag: "latest",
    });
    assert.deepEqual(parseDockerReference("kairos/core:v1"), {
      registry: "docker.io",
      repository: "kairos/core",
      tag: "v1",
    });
    assert.deepEqual(parseDockerReference("index.docker.io/library/ubuntu:24.04").registry, "docker.io");
  });
  it("recognizes hosts with a dot, a port or localhost", () => {
    assert.deepEqual(parseDockerReference("127.0.0.1:5000/a/b:t"), {
      registry: "127.0.0.1:5000",
      repository: "a/b",
      tag: "t",
    });
    assert.deepEqual(parseDockerReference("localhost/x"), {
      registry: "localhost",
      repository: "x",
      tag: "latest",
    });
    assert.deepEqual(parseDockerReference("quay.io/k/os"), {
      registry: "quay.io",
      repository: "k/os",
      tag: "latest",
    });
  });
  it("keeps digests (and tag with digest)", () => {
    assert.deepEqual(parseDockerReference(`q.io/a@${D}`), { registry: "q.io", repository: "a", digest: D });
    assert.deepEqual(parseDockerReference(`q.io/a:1@${D}`), {
      registry: "q.io",
      repository: "a",
      tag: "1",
      digest: D,
    });
  });
  for (const bad of [
    "",
    "Upper/case",
    "a//b",
    `a@sha256:${"z".repeat(64)}`,
    "a@sha256:abc",
    "a:bad tag",
    "a:",
    "-a/b",
  ]) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(
        () => parseDockerReference(bad),
        (e: unknown) => e instanceof KairosError && /invalid image reference/.test(e.message),
      );
    });
  }
});

describe("transport references", () => {
  it("parses every transport", () => {
    assert.deepEqual(parseReference("docker://h.io/a:1"), {
      transport: "docker",
      ref: { registry: "h.io", repository: "a", tag: "1" },
    });
    assert.deepEqual(parseReference("oci:/tmp/x"), { transport: "oci", path: "/tmp/x" });
    assert.deepEqual(parseReference("oci:/tmp/x:v1"), { transport: "oci", path: "/tmp/x", tag: "v1" });
    assert.deepEqual(parseReference("oci-archive:a.tar:v1"), {
      transport: "oci-archive",
      path: "a.tar",
      tag: "v1",
    });
    assert.deepEqual(parseReference("docker-archive:a.tar"), { transport: "docker-archive", path: "a.tar" });
    assert.deepEqual(parseReference("docker-archive:a.tar:foo/bar:1"), {
      transport: "docker-archive",
      path: "a.tar",
      name: "foo/bar:1",
    });
    assert.deepEqual(parseReference("docker-archive:a.tar:@1"), {
      transport: "docker-archive",
      path: "a.tar",
      index: 1,
    });
    assert.deepEqual(parseReference("docker-daemon:foo:1"), { transport: "docker-daemon", name: "foo:1" });
    assert.deepEqual(parseReference("dir:/srv/rootfs"), { transport: "dir", path: "/srv/rootfs" });
  });
  it("round-trips through formatReference", () => {
    for (const s of [
      "docker://h.io/a:1",
      "oci:/x:v",
      "oci-archive:/a.tar",
      "docker-archive:/a.tar:x:1",
      "dir:/r",
    ]) {
      assert.equal(formatReference(parseReference(s)), s);
    }
  });
  it("refuses an unknown transport and lists the known ones", () => {
    assert.throws(
      () => parseReference("registry.example/debian:12"),
      (e: unknown) =>
        e instanceof KairosError &&
        /unknown transport/.test(e.message) &&
        /docker:\/\/, oci:, oci-archive:, docker-archive:, docker-daemon:, dir:/.test(e.hint ?? "") &&
        /docker:\/\/registry.example\/debian:12/.test(e.hint ?? ""),
    );
    assert.throws(() => parseReference("ftp://x/y"), /unknown transport/);
  });
  for (const bad of [
    "docker:h.io/a",
    "oci:",
    "dir:",
    "docker-archive:",
    "docker-archive:a.tar:@x",
    "docker-daemon:",
  ]) {
    it(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseReference(bad), KairosError);
    });
  }
});

describe("platforms", () => {
  it("parses os/arch[/variant]", () => {
    assert.deepEqual(parsePlatform("linux/arm64/v8"), { os: "linux", architecture: "arm64", variant: "v8" });
    assert.deepEqual(parsePlatform("linux/amd64"), { os: "linux", architecture: "amd64" });
  });
  for (const bad of ["linux", "linux/", "a/b/c/d", "Linux/AMD64"]) {
    it(`refuses platform ${JSON.stringify(bad)}`, () =>
      assert.throws(() => parsePlatform(bad), /invalid platform/));
  }
  it("matches arm64 with and without the v8 variant, never a different arch", () => {
    assert.ok(platformMatches({ os: "linux", architecture: "arm64" }, parsePlatform("linux/arm64/v8")));
    assert.ok(
      platformMatches({ os: "linux", architecture: "arm64", variant: "v8" }, parsePlatform("linux/arm64")),
    );
    assert.ok(
      !platformMatches({ os: "linux", architecture: "arm", variant: "v6" }, parsePlatform("linux/arm/v7")),
    );
    assert.ok(!platformMatches({ os: "linux", architecture: "amd64" }, parsePlatform("linux/arm64")));
    assert.ok(!platformMatches(undefined, parsePlatform("linux/amd64")));
  });
});
