import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { oemCloudConfig } from "../../../src/cli/commands/agent-install.js";
import { collectConfig } from "../../../src/config/index.js";

/** A netbooted node's config arrives only through config_url on the kernel command line. */
describe("kairos-agent install: the cloud-config written to COS_OEM", () => {
  let root: string;
  let url: string;
  const server = createServer((req, res) => {
    res.writeHead(200, { "Content-Type": "text/yaml" });
    res.end(
      req.url === "/config.yaml"
        ? `#cloud-config\nconfig_url: ${url}/more.yaml\nusers:\n  - name: kairos\n    passwd: kairos\n`
        : "#cloud-config\nstages:\n  boot:\n    - commands: [echo more]\n",
    );
  });
  before(async () => {
    root = await mkdtemp(join(tmpdir(), "kairos-oem-"));
    await mkdir(join(root, "oem"));
    await writeFile(join(root, "oem/10_site.yaml"), "#cloud-config\nhostname: from-a-file\n");
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    server.close();
    await rm(root, { recursive: true, force: true });
  });

  it("keeps the files and inlines what the command line's config_url fetched (no config_url, no command-line words)", async () => {
    const cmdline = `root=live:${url}/rootfs.squashfs config_url=${url}/config.yaml install.device=/dev/vda install-mode`;
    const all = await collectConfig({ root, cmdline });
    const files = await collectConfig({ root, cmdline: false });
    const text = oemCloudConfig(files, all);
    assert.match(text, /^#cloud-config\n/);
    const oem = parse(text) as Record<string, unknown>;
    assert.equal(oem.hostname, "from-a-file");
    assert.deepEqual(oem.users, [{ name: "kairos", passwd: "kairos" }], "the config_url's user");
    assert.deepEqual(oem.stages, { boot: [{ commands: ["echo more"] }] }, "and the document it chained to");
    assert.equal(oem.config_url, undefined, "inlined, not fetched again at every boot");
    assert.equal(oem.install, undefined, "the command line's own keys are this boot's");
  });

  it("without config_url on the command line it is the files alone", async () => {
    const all = await collectConfig({ root, cmdline: "console=ttyS0 install-mode" });
    const files = await collectConfig({ root, cmdline: false });
    assert.deepEqual(parse(oemCloudConfig(files, all)), { hostname: "from-a-file" });
  });
});
