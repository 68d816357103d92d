import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DirectoryView, type RootfsStat, TarView } from "../../../src/factory/index.js";
import type { EntryType, TarEntry } from "../../../src/tar/index.js";
import { makeDir, makeTarView, type TreeSpec } from "./trees.js";

/** A small deterministic generator (the same sequence on every run). */
function random(seed: number): (n: number) => number {
  return (n) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return (seed >>> 8) % n;
  };
}

function entry(path: string, st: RootfsStat, content?: Buffer): TarEntry {
  return {
    path,
    ...st,
    mtime: 0,
    body: (async function* () {
      if (content) yield content;
    })(),
  };
}

async function* each<T>(xs: T[]): AsyncGenerator<T> {
  yield* xs;
}

describe("TarView", () => {
  it("agrees with a map of paths over many random entries (stat fields, replacement, listing, kept contents)", async () => {
    const rand = random(7);
    const names = ["usr", "lib", "a-name-longer-than-thirteen", "ünï", "x", "y", "z"];
    const types: EntryType[] = [
      "file",
      "file",
      "file",
      "directory",
      "symlink",
      "hardlink",
      "chardev",
      "fifo",
    ];
    const entries: TarEntry[] = [];
    /** The model: final stat of every path (implied parents as root-owned 0755 dirs), kept contents. */
    const model = new Map<string, RootfsStat>();
    const kept = new Map<string, Buffer>();
    const files: string[] = [];
    for (let i = 0; i < 6000; i++) {
      const depth = 1 + rand(i % 500 === 0 ? 40 : 5);
      const parts = Array.from({ length: depth }, () => `${names[rand(names.length)]}${rand(4)}`);
      const path = `/${parts.join("/")}`;
      const type = types[rand(types.length)]!;
      const st: RootfsStat = {
        type,
        mode: rand(0o10000),
        // Beyond 16 bits and 32-bit sizes: the typed arrays must not truncate them.
        uid: rand(3) === 0 ? 0 : 4_000_000_000 + rand(1000),
        gid: rand(70000),
        size: type === "file" ? rand(2) * 2 ** 33 + rand(100000) : 0,
      };
      if (type === "symlink") st.linkname = rand(2) ? `../${names[rand(names.length)]}` : `/${parts[0]}`;
      if (type === "hardlink") st.linkname = files.length ? files[rand(files.length)]! : "/nowhere";
      const content = type === "file" ? Buffer.from(`content ${i}`) : undefined;
      // Written as a tar path would be: relative, sometimes with a leading "./".
      entries.push(entry(`${rand(4) ? "" : "./"}${parts.join("/")}`, st, content));
      for (let k = 1; k < parts.length; k++) {
        const above = `/${parts.slice(0, k).join("/")}`;
        if (!model.has(above)) model.set(above, { type: "directory", mode: 0o755, uid: 0, gid: 0, size: 0 });
      }
      model.set(path, st);
      kept.delete(path);
      if (content && st.size % 3 === 0) kept.set(path, content);
      if (type === "file") files.push(path);
    }
    // Kept: the files whose size is a multiple of 3 (about a third).
    const view = await TarView.fromEntries(each(entries), (_, size) => size % 3 === 0);
    assert.ok(model.size > 5000, `${model.size} paths`);
    // A path under a symlink (or under a hardlink's target) is resolved by lstat: compare the
    // paths whose ancestors are not symlinks in the model, as a chroot would see them.
    const plain = (p: string) => {
      const parts = p.split("/").slice(1, -1);
      for (let k = 1; k <= parts.length; k++) {
        if (model.get(`/${parts.slice(0, k).join("/")}`)?.type === "symlink") return false;
      }
      return true;
    };
    const childrenOf = new Map<string, string[]>();
    for (const p of model.keys()) {
      const cut = p.lastIndexOf("/");
      const parent = p.slice(0, cut) || "/";
      childrenOf.set(parent, [...(childrenOf.get(parent) ?? []), p.slice(cut + 1)]);
    }
    let compared = 0;
    for (const [path, st] of model) {
      if (!plain(path)) continue;
      compared++;
      assert.deepEqual(await view.lstat(path), st, path);
      if (st.type === "file") {
        assert.deepEqual(await view.readFile(path), kept.get(path), path);
      }
      // list() scans every node: a sample of the directories is enough.
      if (st.type === "directory" && compared % 4 === 0) {
        assert.deepEqual(await view.list(path), (childrenOf.get(path) ?? []).sort(), path);
      }
    }
    assert.ok(compared > 3000, `${compared} compared`);
    assert.deepEqual(await view.list("/"), childrenOf.get("/")!.sort());
    assert.equal(await view.lstat("/no/such/path"), undefined);
    assert.equal(await view.lstat(`/${names[0]}0/not-a-name`), undefined);
  });

  it("keeps what the old map kept at the edges: the root, replaced contents, hardlinks, every type", async () => {
    const dir = (path: string): TarEntry =>
      entry(path, { type: "directory", mode: 0o700, uid: 1, gid: 2, size: 0 });
    const file = (path: string, text: string, mode = 0o644): TarEntry =>
      entry(path, { type: "file", mode, uid: 0, gid: 0, size: text.length }, Buffer.from(text));
    const view = await TarView.fromEntries(
      each([
        dir("."),
        file("etc/os-release", "ID=first\n"),
        file("etc/os-release", "ID=second\n"),
        file("etc/kept-then-not", "kept\n"),
        file("etc/kept-then-not", "not\n"),
        entry("etc/hard", {
          type: "hardlink",
          mode: 0o644,
          uid: 0,
          gid: 0,
          size: 0,
          linkname: "./etc//os-release",
        }),
        entry("dev/null", { type: "chardev", mode: 0o666, uid: 0, gid: 0, size: 0 }),
        entry("dev/sda", { type: "blockdev", mode: 0o660, uid: 0, gid: 6, size: 0 }),
        entry("run/fifo", { type: "fifo", mode: 0o600, uid: 0, gid: 0, size: 0 }),
        file("usr/bin/su", "", 0o4755),
        dir("usr"),
      ]),
      (path, size) => path === "/etc/os-release" || (path === "/etc/kept-then-not" && size === 5),
    );
    assert.equal(await view.lstat("/"), undefined, "the root has no entry of its own");
    assert.equal(await view.exists("/"), true);
    assert.equal(await view.realpath("/"), "/");
    assert.deepEqual(await view.list("/"), ["dev", "etc", "run", "usr"]);
    assert.equal((await view.readFile("/etc/os-release"))?.toString(), "ID=second\n");
    assert.equal(
      await view.readFile("/etc/kept-then-not"),
      undefined,
      "a later entry not kept drops the contents",
    );
    assert.deepEqual(await view.lstat("/etc/hard"), {
      type: "hardlink",
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: 0,
      linkname: "/etc/os-release",
    });
    assert.equal(
      (await view.readFile("/etc/hard"))?.toString(),
      "ID=second\n",
      "a hardlink reads its target",
    );
    assert.equal((await view.lstat("/dev/null"))?.type, "chardev");
    assert.deepEqual(await view.lstat("/dev/sda"), {
      type: "blockdev",
      mode: 0o660,
      uid: 0,
      gid: 6,
      size: 0,
    });
    assert.equal((await view.lstat("/run/fifo"))?.type, "fifo");
    assert.equal((await view.lstat("/usr/bin/su"))?.mode, 0o4755);
    // /usr was implied by /usr/bin/su first, then its own entry replaced the implied one.
    assert.deepEqual(await view.lstat("/usr"), { type: "directory", mode: 0o700, uid: 1, gid: 2, size: 0 });
    assert.deepEqual(await view.lstat("/usr/bin"), {
      type: "directory",
      mode: 0o755,
      uid: 0,
      gid: 0,
      size: 0,
    });
    assert.deepEqual(await view.list("/usr/bin/su"), [], "a file lists nothing");
    assert.deepEqual(await view.list("/nowhere"), []);
  });

  it("add() normalizes the path and a hardlink's target, and refuses an unknown type", async () => {
    const view = await TarView.fromEntries(each([]));
    view.add(
      "usr//lib/./x/../os-release",
      { type: "file", mode: 0o644, uid: 0, gid: 0, size: 3 },
      Buffer.from("ID\n"),
    );
    view.add("etc/link", {
      type: "hardlink",
      mode: 0o644,
      uid: 0,
      gid: 0,
      size: 0,
      linkname: "usr/lib/os-release",
    });
    view.add("/", { type: "directory", mode: 0o700, uid: 0, gid: 0, size: 0 });
    assert.equal((await view.readFile("/usr/lib/os-release"))?.toString(), "ID\n");
    assert.equal((await view.readFile("/etc/link"))?.toString(), "ID\n");
    assert.equal(await view.lstat("/"), undefined, "the root is not an entry");
    assert.throws(
      () => view.add("/x/y", { type: "socket" as EntryType, mode: 0, uid: 0, gid: 0, size: 0 }),
      /unknown entry type socket for \/x\/y/,
    );
    assert.equal(await view.lstat("/x"), undefined, "a refused entry implies no parent");
    assert.deepEqual(await view.list("/"), ["etc", "usr"]);
  });

  it("resolves symlinks as a directory on disk does, over many random lookups", async () => {
    const rand = random(11);
    const dirNames = ["d0", "d1", "d2", "usr"];
    const dirPath = () => Array.from({ length: rand(4) }, () => dirNames[rand(dirNames.length)]!).join("/");
    const at = (d: string, name: string) => (d ? `/${d}/${name}` : `/${name}`);
    // Files and symlinks are leaves with names no directory has, so the tree on disk and the
    // tar stream describe the same rootfs.
    const spec: TreeSpec = { files: {}, symlinks: {}, dirs: [] };
    for (let i = 0; i < 40; i++) spec.dirs!.push(dirPath() || "d0");
    for (let i = 0; i < 60; i++) spec.files![at(dirPath(), `f${rand(8)}`)] = `file ${i}`;
    const targets = () => {
      const r = rand(5);
      if (r === 0) return `/${dirPath()}`;
      if (r === 1) return `../${dirPath()}/f${rand(8)}`;
      if (r === 2) return `s${rand(6)}`;
      if (r === 3) return `../../../${dirPath()}`;
      return `${dirPath()}/missing`;
    };
    for (let i = 0; i < 60; i++) {
      const p = at(dirPath(), `s${rand(6)}`);
      if (!(p in spec.files!)) spec.symlinks![p] = targets();
    }
    const d = await makeDir(spec);
    try {
      const disk = new DirectoryView(d.root);
      const tar = await makeTarView(spec);
      const parts = [...dirNames, "..", ".", "f1", "f3", "s0", "s1", "s2", "s3", "missing"];
      for (let i = 0; i < 800; i++) {
        const path = `/${Array.from({ length: 1 + rand(6) }, () => parts[rand(parts.length)]!).join("/")}`;
        assert.equal(await tar.realpath(path), await disk.realpath(path), `realpath ${path}`);
        assert.equal(await tar.exists(path), await disk.exists(path), `exists ${path}`);
        assert.equal(await tar.readlink(path), await disk.readlink(path), `readlink ${path}`);
        assert.deepEqual(await tar.readFile(path), await disk.readFile(path), `readFile ${path}`);
        assert.deepEqual(await tar.list(path), await disk.list(path), `list ${path}`);
        // The root is the one path a tar view has no entry for (lstat gives undefined there).
        if ((await disk.realpath(path)) === "/" && (await disk.lstat(path))?.type === "directory") continue;
        const [a, b] = [await tar.lstat(path), await disk.lstat(path)];
        assert.equal(a?.type, b?.type, `lstat ${path}`);
        if (a?.type === "file") assert.equal(a.size, b?.size, `size ${path}`);
      }
    } finally {
      await d.cleanup();
    }
  });
});
