import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  assertContract,
  doctor,
  frameworkLayer,
  type InitramfsResult,
  parseOsRelease,
} from "../../../src/factory/index.js";
import { readTar, writeTar } from "../../../src/tar/index.js";
import { collect, tempDir } from "../../helpers/tmp.js";
import { alpineTree, DEB_KVER, debianTree, FED_KVER, fedoraTree, makeTarView } from "./trees.js";

const fakeInitrd = (kver: string): InitramfsResult => ({
  data: Buffer.from("initrd"),
  uncompressedSize: 6,
  compression: "none",
  kernelVersion: kver,
  modules: [],
  builtin: [],
  notFound: [],
});

async function layerOf(spec: ReturnType<typeof debianTree>, kver: string, dir: string, fips = false) {
  const agent = join(dir, "agent");
  await writeFile(agent, "agent");
  const view = await makeTarView(spec);
  const report = await doctor(view);
  const layer = await frameworkLayer(view, report, fakeInitrd(kver), { agent, fips, osVersion: "v2.0.0" });
  const tar = await collect(writeTar(layer.entries));
  const entries = new Map<string, { type: string; linkname?: string; body: string }>();
  for await (const e of readTar(
    (async function* () {
      yield tar;
    })(),
  )) {
    const chunks: Buffer[] = [];
    for await (const c of e.body) chunks.push(c);
    entries.set(e.path, { type: e.type, linkname: e.linkname, body: Buffer.concat(chunks).toString() });
  }
  return entries;
}

describe("the framework layer kairos init writes", () => {
  it("identity, initrd and /boot links, enable links, whiteouts for baked-in SSH host keys", async (t) => {
    const spec = debianTree();
    spec.files!["/etc/ssh/ssh_host_rsa_key"] = "secret";
    spec.files!["/etc/ssh/ssh_host_rsa_key.pub"] = "public";
    spec.files!["/etc/ssh/sshd_config"] = "keep";
    const e = await layerOf(spec, DEB_KVER, await tempDir(t));
    assert.equal(parseOsRelease(e.get("etc/os-release")!.body).get("KAIROS_VERSION"), "v2.0.0");
    assert.equal(parseOsRelease(e.get("etc/os-release")!.body).get("ID"), "debian");
    assert.equal(parseOsRelease(e.get("etc/kairos-release")!.body).get("KAIROS_FIPS"), "false");
    assert.equal(e.get(`boot/initrd-${DEB_KVER}`)!.body, "initrd");
    assert.deepEqual(e.get("boot/initrd"), { type: "symlink", linkname: `initrd-${DEB_KVER}`, body: "" });
    assert.equal(e.get("boot/vmlinuz")!.linkname, `vmlinuz-${DEB_KVER}`);
    assert.equal(e.get("etc/systemd/system/sysinit.target.wants/cos-setup-fs.service")!.type, "symlink");
    assert.equal(e.get("usr/bin/kairos-agent")!.body, "agent");
    assert.equal(e.get("etc/ssh/.wh.ssh_host_rsa_key")!.type, "file");
    assert.equal(e.get("etc/ssh/.wh.ssh_host_rsa_key.pub")!.type, "file");
    assert.equal(e.has("etc/ssh/.wh.sshd_config"), false);
  });

  it("--fips: wrapper at /usr/bin/kairos-agent, executable in /usr/lib/kairos, KAIROS_FIPS=true", async (t) => {
    const e = await layerOf(debianTree(), DEB_KVER, await tempDir(t), true);
    assert.match(e.get("usr/bin/kairos-agent")!.body, /^#!\/bin\/sh\n/);
    assert.equal(e.get("usr/lib/kairos/kairos-agent")!.body, "agent");
    assert.equal(parseOsRelease(e.get("etc/kairos-release")!.body).get("KAIROS_FIPS"), "true");
  });

  it("a kernel only in /usr/lib/modules/VER gets /boot/vmlinuz pointing there", async (t) => {
    const spec = fedoraTree();
    delete spec.files![`/boot/vmlinuz-${FED_KVER}`];
    const e = await layerOf(spec, FED_KVER, await tempDir(t));
    assert.equal(e.get("boot/vmlinuz")!.linkname, `../usr/lib/modules/${FED_KVER}/vmlinuz`);
  });

  it("assertContract names every failed requirement and its fix", async () => {
    const report = await doctor(await makeTarView(alpineTree()));
    assert.throws(
      () => assertContract(report, "dir:/x"),
      (err: Error & { hint?: string }) => {
        assert.match(
          err.message,
          /^dir:\/x does not meet the Kairos contract: .*libc: musl libc base.*kernel: no kernel in \/boot/,
        );
        assert.match(err.hint!, /\(details: kairos doctor dir:\/x\)$/);
        return true;
      },
    );
  });
});
