import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { link, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import {
  encodeHeader,
  packDirectory,
  readTar,
  type TarEntry,
  TarFormatError,
  UnsafePathError,
  writeTar,
} from "../../../src/tar/index.js";
import { chunked, collect, tempDir } from "../../helpers/tmp.js";

async function entries(buf: Buffer, chunk = 4096): Promise<(Omit<TarEntry, "body"> & { content: Buffer })[]> {
  const out = [];
  for await (const e of readTar(chunked(buf, chunk))) {
    const { body, ...rest } = e;
    out.push({ ...rest, content: await collect(body) });
  }
  return out;
}

const CAP = Buffer.from("0100000200200000000000000000000000000000", "hex"); // not valid UTF-8 as a whole

test("roundtrip: what we write, GNU tar reads, and we read back byte-exact", async (t) => {
  const dir = await tempDir(t);
  const long = `${"d".repeat(120)}/${"f".repeat(130)}`;
  const buf = await collect(
    writeTar([
      { header: { path: "etc", type: "directory", mode: 0o755, uid: 0, gid: 0, size: 0, mtime: 1700000000 } },
      {
        header: {
          path: "etc/hello",
          type: "file",
          mode: 0o644,
          uid: 1000,
          gid: 1000,
          size: 5,
          mtime: 1700000000.5,
        },
        body: Buffer.from("hello"),
      },
      {
        header: { path: long, type: "file", mode: 0o600, uid: 0, gid: 0, size: 3, mtime: 1 },
        body: Buffer.from("abc"),
      },
      {
        header: {
          path: "bin/ping",
          type: "file",
          mode: 0o4755,
          uid: 0,
          gid: 0,
          size: 1,
          mtime: 1,
          xattrs: new Map([["security.capability", CAP]]),
        },
        body: Buffer.from("x"),
      },
      {
        header: {
          path: "héllo/ünïcode",
          type: "symlink",
          mode: 0o777,
          uid: 0,
          gid: 0,
          size: 0,
          mtime: 1,
          linkname: "../etc/hello",
        },
      },
      {
        header: {
          path: "etc/hello2",
          type: "hardlink",
          mode: 0o644,
          uid: 0,
          gid: 0,
          size: 0,
          mtime: 1,
          linkname: "etc/hello",
        },
      },
      {
        header: {
          path: "dev/null",
          type: "chardev",
          mode: 0o666,
          uid: 0,
          gid: 0,
          size: 0,
          mtime: 1,
          devmajor: 1,
          devminor: 3,
        },
      },
      { header: { path: "run/fifo", type: "fifo", mode: 0o644, uid: 0, gid: 0, size: 0, mtime: 1 } },
      {
        header: { path: "big-uid", type: "file", mode: 0o644, uid: 100000000, gid: 5, size: 0, mtime: 1 },
        body: Buffer.alloc(0),
      },
    ]),
  );
  const file = join(dir, "a.tar");
  await writeFile(file, buf);
  const listing = execFileSync("tar", ["-tvf", file, "--numeric-owner"]).toString();
  assert.match(listing, new RegExp(`${"f".repeat(130)}`));
  assert.match(listing, /-rwsr-xr-x 0\/0 .* bin\/ping/);
  assert.match(listing, /crw-rw-rw- 0\/0\s+1,\s*3 .* dev\/null/);
  assert.match(listing, /100000000\/5 .* big-uid/);
  const got = await entries(buf, 7);
  assert.deepEqual(
    got.map((e) => e.path),
    ["etc", "etc/hello", long, "bin/ping", "héllo/ünïcode", "etc/hello2", "dev/null", "run/fifo", "big-uid"],
  );
  assert.equal(got[1]!.mtime, 1700000000.5);
  assert.equal(got[1]!.content.toString(), "hello");
  assert.equal(got[1]!.uid, 1000);
  assert.equal(got[3]!.mode, 0o4755);
  assert.ok(got[3]!.xattrs!.get("security.capability")!.equals(CAP));
  assert.equal(got[4]!.linkname, "../etc/hello");
  assert.equal(got[5]!.type, "hardlink");
  assert.equal(got[5]!.linkname, "etc/hello");
  assert.equal(got[6]!.devmajor, 1);
  assert.equal(got[6]!.devminor, 3);
  assert.equal(got[8]!.uid, 100000000);
});

test("reads GNU tar's own gnu and pax formats, including xattrs from --xattrs", async (t) => {
  const dir = await tempDir(t);
  const src = join(dir, "src");
  await mkdir(join(src, "x".repeat(110)), { recursive: true });
  await writeFile(join(src, "x".repeat(110), "y".repeat(110)), "long");
  await writeFile(join(src, "plain"), "p");
  await link(join(src, "plain"), join(src, "plain-link"));
  await symlink("plain", join(src, "sym"));
  execFileSync("setfattr", ["-n", "user.bin", "-v", "0xff00fe", join(src, "plain")]);
  for (const format of ["gnu", "pax"]) {
    const file = join(dir, `${format}.tar`);
    execFileSync("tar", [
      "-cf",
      file,
      `--format=${format}`,
      "--xattrs",
      "--xattrs-include=*",
      "-C",
      src,
      ".",
    ]);
    const got = await entries(await readFile(file), 1000);
    const byPath = new Map(got.map((e) => [e.path, e]));
    assert.equal(byPath.get(`${"x".repeat(110)}/${"y".repeat(110)}`)?.content.toString(), "long", format);
    assert.equal(byPath.get("sym")?.linkname, "plain", format);
    const links = got.filter((e) => e.type === "hardlink");
    assert.equal(links.length, 1, format);
    assert.ok(byPath.has("."), `${format}: root entry is "."`);
    if (format === "pax") {
      const withX = got.find((e) => e.xattrs?.has("user.bin"));
      assert.ok(
        withX?.xattrs?.get("user.bin")?.equals(Buffer.from([0xff, 0x00, 0xfe])),
        "binary xattr kept byte-exact",
      );
    }
  }
});

test("packDirectory yields owners, hardlink groups, symlinks, fifos and binary xattrs", async (t) => {
  const dir = await tempDir(t);
  await mkdir(join(dir, "usr/bin"), { recursive: true });
  await writeFile(join(dir, "usr/bin/tool"), "#!/bin/sh\n");
  await link(join(dir, "usr/bin/tool"), join(dir, "usr/bin/tool2"));
  await symlink("usr/bin", join(dir, "bin"));
  execFileSync("mkfifo", [join(dir, "fifo")]);
  execFileSync("setfattr", ["-n", "user.cap", "-v", "0x0100ff", join(dir, "usr/bin/tool")]);
  const buf = await collect(writeTar(packDirectory(dir)));
  const got = await entries(buf);
  assert.deepEqual(
    got.map((e) => `${e.type}:${e.path}`),
    [
      "symlink:bin",
      "fifo:fifo",
      "directory:usr",
      "directory:usr/bin",
      "file:usr/bin/tool",
      "hardlink:usr/bin/tool2",
    ],
  );
  assert.ok(got[4]!.xattrs?.get("user.cap")?.equals(Buffer.from([1, 0, 0xff])));
  assert.equal(got[5]!.linkname, "usr/bin/tool");
  // GNU tar agrees.
  const file = join(dir, "..", `${Date.now()}.tar`);
  await writeFile(file, buf);
  t.after(() => execFileSync("rm", ["-f", file]));
  assert.match(execFileSync("tar", ["-tvf", file]).toString(), /usr\/bin\/tool2 link to usr\/bin\/tool/);
});

function fixChecksum(name: string, typeflag: string, size: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(name, 0, "utf8");
  b.write("0000644\0", 100);
  b.write("0000000\0", 108);
  b.write("0000000\0", 116);
  b.write(`${size.toString(8).padStart(11, "0")}\0`, 124);
  b.write("00000000000\0", 136);
  b.write(typeflag, 156);
  b.write("ustar\x0000", 257, "latin1");
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  b.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
  return b;
}

async function drain(buf: Buffer): Promise<void> {
  for await (const e of readTar(chunked(buf, 512))) await collect(e.body);
}

test("refuses absolute paths and '..' components", async () => {
  const end = Buffer.alloc(1024);
  await assert.rejects(drain(Buffer.concat([fixChecksum("/etc/passwd", "0", 0), end])), UnsafePathError);
  await assert.rejects(
    drain(Buffer.concat([fixChecksum("a/../../etc/passwd", "0", 0), end])),
    /"\.\." component/,
  );
});

test("refuses a hardlink whose target climbs out", async () => {
  const h = encodeHeader({
    path: "x",
    type: "hardlink",
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 0,
    linkname: "../../etc/shadow",
  });
  await assert.rejects(drain(Buffer.concat([h, Buffer.alloc(1024)])), /hardlink target .* "\.\." component/);
});

test("a truncated archive is an error, not a short listing", async () => {
  const full = await collect(
    writeTar([
      {
        header: { path: "f", type: "file", mode: 0o644, uid: 0, gid: 0, size: 2000, mtime: 0 },
        body: Buffer.alloc(2000, 1),
      },
    ]),
  );
  await assert.rejects(
    drain(full.subarray(0, 1000)),
    (e: unknown) => e instanceof TarFormatError && /ends inside the content of f/.test(e.message),
  );
  await assert.rejects(drain(full.subarray(0, 300)), /ends inside a header/);
  await assert.rejects(drain(full.subarray(0, 2560)), /end-of-archive marker/);
});

test("a corrupt header is reported with its offset", async () => {
  const h = fixChecksum("file", "0", 0);
  h[0] = 0x41; // change a byte after the checksum was computed
  await assert.rejects(drain(Buffer.concat([h, Buffer.alloc(1024)])), /header at byte 0 has a bad checksum/);
});

test("oversized pax headers are refused before they are buffered", async () => {
  const h = fixChecksum("PaxHeaders/x", "x", 5 << 20);
  await assert.rejects(
    (async () => {
      for await (const _ of readTar(chunked(Buffer.concat([h, Buffer.alloc(1024)]), 512), {
        maxMetadataBytes: 1 << 20,
      })) {
        // nothing
      }
    })(),
    /over the 1048576-byte limit/,
  );
});

test("writer refuses a body that does not match its declared size", async () => {
  await assert.rejects(
    collect(
      writeTar([
        {
          header: { path: "f", type: "file", mode: 0o644, uid: 0, gid: 0, size: 10, mtime: 0 },
          body: Buffer.from("short"),
        },
      ]),
    ),
    /has 5 bytes, its header says 10/,
  );
});
