import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { auroraBootCloudConfig, planFrom } from "../../../src/cli/commands/auroraboot.js";
import {
  AURORABOOT_KEYS,
  flattenConfigFile,
  keysHelp,
  resolveAuroraBootSettings,
  splitSets,
} from "../../../src/cli/commands/auroraboot-keys.js";

// The image-source rule (container_image) and its table: test/unit/oci/source-reference.test.ts.

describe("AuroraBoot keys", () => {
  it("fills in AuroraBoot's defaults and types booleans", () => {
    const s = resolveAuroraBootSettings(splitSets(["container_image=quay.io/x:1", "disable_iso=yes"]));
    assert.equal(s.values.get("state_dir"), "/tmp/auroraboot");
    assert.equal(s.values.get("disable_iso"), "true");
    assert.equal(s.values.get("listen_addr"), ":8080");
    assert.throws(() => resolveAuroraBootSettings([["disable_netboot", "perhaps"]]), /not a boolean/);
  });
  it("moves deprecated spellings (insecure, iso.data) unless the new key is set", () => {
    const s = resolveAuroraBootSettings([
      ["insecure", "true"],
      ["iso.data", "/srv/overlay"],
    ]);
    assert.equal(s.values.get("allow-insecure-registries"), "true");
    assert.equal(s.values.get("iso.overlay_iso"), "/srv/overlay");
    assert.equal(s.notes.length, 2);
    const both = resolveAuroraBootSettings([
      ["insecure", "true"],
      ["allow-insecure-registries", "false"],
    ]);
    assert.equal(both.values.get("allow-insecure-registries"), "false");
  });
  it("refuses typos under AuroraBoot's blocks and keys kairos-ts lacks; keeps other keys as free values", () => {
    assert.throws(() => resolveAuroraBootSettings([["iso.nmae", "x"]]), /unknown AuroraBoot key 'iso\.nmae'/);
    assert.throws(() => resolveAuroraBootSettings([["system.memory", "4096"]]), /not supported by kairos-ts/);
    assert.throws(
      () => resolveAuroraBootSettings([["disk.eif", "true"]]),
      /unknown AuroraBoot key 'disk\.eif'/,
    );
    assert.equal(resolveAuroraBootSettings([["disk.efi", "true"]]).values.get("disk.efi"), "true");
    assert.throws(() => resolveAuroraBootSettings([["arch", "arm64"]]), /amd64 media only/);
    const s = resolveAuroraBootSettings([["node_name", "edge-1"]]);
    assert.equal(s.free.get("node_name"), "edge-1");
  });
  it("names the ISO from iso.name, iso.include_date and iso.override_name; live cmdline from the iso keys", () => {
    const at = new Date("2026-12-01T10:00:00Z");
    const plan = (sets: string[]) => planFrom(resolveAuroraBootSettings(splitSets(sets)), at);
    assert.equal(plan([]).isoName, "kairos");
    assert.equal(plan(["iso.name=edge", "iso.include_date=true"]).isoName, "edge.20261201");
    assert.equal(
      plan(["iso.name=edge", "iso.include_date=true", "iso.override_name=exact"]).isoName,
      "exact",
    );
    assert.equal(
      plan(["iso.extend-live-cmdline=rd.debug", "iso.live_console=ttyS0,115200"]).liveCmdline,
      "rd.debug console=ttyS0,115200",
    );
  });
  it("reads AuroraBoot's YAML config file as dotted keys", () => {
    assert.deepEqual(
      flattenConfigFile(
        "container_image: quay.io/x:1\ndisable_netboot: true\niso:\n  name: edge\n",
        "c.yaml",
      ),
      [
        ["container_image", "quay.io/x:1"],
        ["disable_netboot", "true"],
        ["iso.name", "edge"],
      ],
    );
    assert.throws(() => flattenConfigFile("- a\n", "c.yaml"), /expected a map/);
  });
  it("--help lists every key with its default", () => {
    const h = keysHelp();
    for (const k of AURORABOOT_KEYS) assert.ok(h.includes(`  ${k.key}`), k.key);
    assert.match(h, /state_dir \(default \/tmp\/auroraboot\)/);
  });
});

describe("AuroraBoot's cloud_config", () => {
  const settings = resolveAuroraBootSettings([["node_name", "edge-1"]]);
  it("renders [[ .key ]] with --set values, then validates", async () => {
    const c = await auroraBootCloudConfig("#cloud-config\nhostname: [[ .node_name ]]\n", settings);
    assert.equal(c.text, "#cloud-config\nhostname: edge-1\n");
    await assert.rejects(
      auroraBootCloudConfig("#cloud-config\nhostname: [[ .nope ]]\n", settings),
      /cloud_config:2:14: \[\[ \]\] template: unknown template value \.nope/,
    );
  });
  it("an empty config is an error, as AuroraBoot says it", async () => {
    await assert.rejects(
      auroraBootCloudConfig("-", settings, async () => "  \n"),
      /cloud config set but contents are empty/,
    );
  });
  it("takes - (stdin) and an http(s) URL", async () => {
    const fromStdin = await auroraBootCloudConfig("-", settings, async () => "#cloud-config\nhostname: s\n");
    assert.equal(fromStdin.text, "#cloud-config\nhostname: s\n");
    const server = createServer((_req, res) => res.end("#cloud-config\nhostname: [[ .node_name ]]-url\n"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/c.yaml`;
      assert.equal(
        (await auroraBootCloudConfig(url, settings)).text,
        "#cloud-config\nhostname: edge-1-url\n",
      );
    } finally {
      server.close();
    }
  });
});
