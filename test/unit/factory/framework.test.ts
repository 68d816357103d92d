import assert from "node:assert/strict";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import {
  ENABLED_UNITS,
  enableLinks,
  FRAMEWORK_UNITS,
  frameworkFiles,
  layerEntries,
  packerFiles,
} from "../../../src/factory/index.js";
import { run } from "../../../src/sys/index.js";
import { readTar, writeTar } from "../../../src/tar/index.js";
import { collect, tempDir } from "../../helpers/tmp.js";

async function stubAgent(dir: string): Promise<string> {
  const p = join(dir, "agent");
  await writeFile(p, "#!/bin/sh\necho 0.1.0\n");
  return p;
}

describe("framework files", () => {
  it("has the agent, every unit running `kairos-agent run-stage`, the boot script, dracut module, grub.cfg, system configs", async (t) => {
    const files = await frameworkFiles({ agent: await stubAgent(await tempDir(t)) });
    const paths = files.map((f) => f.path);
    assert.ok(paths.includes("/usr/bin/kairos-agent"));
    for (const u of Object.keys(FRAMEWORK_UNITS)) assert.ok(paths.includes(`/etc/systemd/system/${u}`), u);
    for (const stage of ["fs", "boot", "network", "reconcile"]) {
      const unit = files.find((f) => f.path === `/etc/systemd/system/cos-setup-${stage}.service`)!;
      assert.match(
        unit.content!.toString(),
        new RegExp(`^ExecStart=/usr/bin/kairos-agent run-stage ${stage}$`, "m"),
      );
    }
    assert.match(
      files.find((f) => f.path.endsWith("cos-setup-reconcile.timer"))!.content!.toString(),
      /Unit=cos-setup-reconcile\.service/,
    );
    for (const p of [
      "/usr/lib/kairos/early-boot.sh",
      "/usr/lib/dracut/modules.d/30kairos/module-setup.sh",
      "/usr/lib/dracut/modules.d/30kairos/kairos-early-boot.sh",
      "/etc/dracut.conf.d/10-kairos.conf",
      "/etc/cos/grub.cfg",
      "/system/oem/00_kairos-defaults.yaml",
    ]) {
      assert.ok(paths.includes(p), p);
    }
    assert.equal(files.find((f) => f.path === "/usr/lib/kairos/early-boot.sh")!.mode, 0o755);
  });

  it("FIPS flavor: a wrapper at /usr/bin/kairos-agent execs the executable in /usr/lib/kairos", async (t) => {
    const files = await frameworkFiles({ agent: await stubAgent(await tempDir(t)), fips: true });
    const wrapper = files.find((f) => f.path === "/usr/bin/kairos-agent")!;
    assert.match(wrapper.content!.toString(), /exec \/usr\/lib\/kairos\/kairos-agent "\$@"/);
    assert.ok(files.some((f) => f.path === "/usr/lib/kairos/kairos-agent" && f.hostPath));
    await run("sh", ["-n"], { input: wrapper.content! });
  });

  it("carries tar2sqfs with its libraries: it runs in a root that has only sh and the C library", async (t) => {
    const root = await tempDir(t);
    const files = await packerFiles();
    assert.ok(files.some((f) => f.path === "/usr/lib/kairos/bin/tar2sqfs" && f.mode === 0o755));
    assert.ok(files.some((f) => f.path === "/usr/lib/kairos/lib/libsquashfs.so.1"));
    assert.ok(!files.some((f) => /\/(libc|ld-linux)/.test(f.path)), "the C library stays the node's");
    await run("shellcheck", ["-s", "sh", join(import.meta.dirname, "../../../framework/bin/tar2sqfs")]);
    const put = async (path: string, from: { content?: Buffer; hostPath?: string }, mode: number) => {
      await mkdir(dirname(join(root, path)), { recursive: true });
      await writeFile(join(root, path), from.content ?? (await readFile(from.hostPath!)), { mode });
    };
    for (const f of files) await put(f.path, f, f.mode);
    // A minimal "node": the loader, the C library and a shell.
    for (const p of ["/lib64/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/bin/sh"]) {
      await put(p, { hostPath: p }, 0o755);
    }
    const r = await run("chroot", [root, "/usr/lib/kairos/bin/tar2sqfs", "--version"]);
    assert.match(r.stdout, /tar2sqfs \(squashfs-tools-ng\)/);
  });

  it("refuses a missing agent executable", async () => {
    await assert.rejects(
      frameworkFiles({ agent: "/nonexistent/agent" }),
      /kairos-agent executable \/nonexistent\/agent not found/,
    );
  });

  it("enable links match `systemctl enable` ([Install] WantedBy of each unit)", async (t) => {
    const files = await frameworkFiles({ agent: await stubAgent(await tempDir(t)) });
    for (const link of enableLinks()) {
      const unit = link.path.split("/").pop()!;
      assert.ok((ENABLED_UNITS as readonly string[]).includes(unit));
      const text = files.find((f) => f.path === `/etc/systemd/system/${unit}`)!.content!.toString();
      const wanted = /^WantedBy=(\S+)$/m.exec(text)![1];
      assert.equal(link.path, `/etc/systemd/system/${wanted}.wants/${unit}`);
      assert.equal(link.linkname, `/etc/systemd/system/${unit}`);
    }
  });

  it("layer entries: parents first, existing directories left alone, agent streamed from disk", async (t) => {
    const files = await frameworkFiles({ agent: await stubAgent(await tempDir(t)) });
    const existing = new Set(["/etc", "/usr", "/usr/bin", "/usr/lib", "/etc/systemd", "/etc/systemd/system"]);
    const tar = await collect(writeTar(layerEntries(files, async (p) => existing.has(p))));
    const seen: string[] = [];
    for await (const e of readTar(
      (async function* () {
        yield tar;
      })(),
    )) {
      seen.push(`${e.type}:${e.path}`);
      if (e.path === "usr/bin/kairos-agent")
        assert.equal(Buffer.concat(await collectBody(e.body)).toString(), "#!/bin/sh\necho 0.1.0\n");
    }
    assert.ok(!seen.includes("directory:etc") && !seen.includes("directory:usr/bin"));
    assert.ok(seen.includes("directory:usr/lib/kairos") && seen.includes("directory:system/oem"));
    const firstFile = seen.findIndex((s) => s.startsWith("file:"));
    assert.ok(
      seen.slice(firstFile).every((s) => !s.startsWith("directory:")),
      "directories come first",
    );
  });
});

async function collectBody(body: AsyncIterable<Buffer>): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for await (const c of body) out.push(c);
  return out;
}
