import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { findDaemonSocket, openImage, writeImage } from "../../src/oci/index.js";
import { run } from "../../src/sys/index.js";
import { readTar } from "../../src/tar/index.js";
import { startPodmanService, type TestDaemon } from "../helpers/daemon.js";
import { tempDir } from "../helpers/tmp.js";
import { twoLayerImage } from "../unit/oci/fixtures.js";

describe("docker-daemon: against a real Podman API service", () => {
  let daemon: TestDaemon;
  let oldHost: string | undefined;
  before(async () => {
    daemon = await startPodmanService();
    oldHost = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${daemon.socket}`;
  });
  after(async () => {
    if (oldHost === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = oldHost;
    await daemon?.stop();
  });

  it("reads an image imported with podman import, through $DOCKER_HOST", async (t) => {
    const dir = await tempDir(t);
    await mkdir(join(dir, "root/etc"), { recursive: true });
    await writeFile(join(dir, "root/etc/os-release"), "ID=kairos-test\n");
    await run("tar", ["-C", join(dir, "root"), "-cf", join(dir, "root.tar"), "."]);
    await daemon.podman(["import", join(dir, "root.tar"), "localhost/kt-import:1"]);
    const img = await openImage("docker-daemon:localhost/kt-import:1");
    t.after(() => img.close());
    const layers = await img.layers();
    assert.equal(layers.length, 1);
    const names: string[] = [];
    for await (const e of readTar(await layers[0]!.uncompressed())) names.push(e.path);
    assert.ok(names.includes("etc/os-release"), names.join(","));
    assert.equal((await img.config()).os, "linux");
  });

  it("loads an image into the daemon (docker-daemon: as destination)", async (t) => {
    const img = await twoLayerImage();
    t.after(() => img.close());
    await writeImage(img, "docker-daemon:localhost/kt-load:2");
    const out = await daemon.podman(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert.ok(out.includes("localhost/kt-load:2"), out);
    const back = await openImage("docker-daemon:localhost/kt-load:2");
    t.after(() => back.close());
    assert.deepEqual(
      (await back.layers()).map((l) => l.diffId),
      (await img.layers()).map((l) => l.diffId),
    );
  });

  it("says which image the daemon does not have", async () => {
    await assert.rejects(
      openImage("docker-daemon:localhost/does-not-exist:1"),
      /docker-daemon:localhost\/does-not-exist:1: the daemon has no such image/,
    );
  });

  it("lists the sockets it tried when there is no daemon", async () => {
    await assert.rejects(
      findDaemonSocket({ DOCKER_HOST: "unix:///nonexistent/docker.sock" }),
      /no Docker or Podman daemon socket found \(tried \/nonexistent\/docker.sock\)/,
    );
    await assert.rejects(findDaemonSocket({ DOCKER_HOST: "tcp://1.2.3.4:2375" }), /not a unix socket/);
  });
});
