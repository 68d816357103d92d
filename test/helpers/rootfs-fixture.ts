/**
 * A tiny rootfs tarball for media tests: fake kernel/initrd behind Debian-style symlinks, a
 * setuid binary with a binary security.capability xattr, a hardlink, a device node, a POSIX ACL
 * (which squashfs cannot store), a non-root file owner and a kairos-release. Written with our
 * own tar writer, so no privileges are needed.
 */
import { createWriteStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { type TarHeader, type WriteEntry, writeTar } from "../../src/tar/index.js";

export const FIXTURE_KERNEL = Buffer.from("FAKE-KERNEL-6.1.0-test\n");
export const FIXTURE_INITRD = Buffer.from("FAKE-INITRD-6.1.0-test\n");
/** A valid v2 file capability (cap_net_raw permitted), as Debian's ping carries. */
export const FIXTURE_CAP = Buffer.from("0100000200200000000000000000000000000000", "hex");
/** A user xattr value that is not valid UTF-8. */
export const FIXTURE_BINARY_XATTR = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0xc3]);

export interface FixtureOptions {
  kernel?: boolean;
  kairosRelease?: string | null;
  extra?: WriteEntry[];
}

function h(path: string, type: TarHeader["type"], extra: Partial<TarHeader> = {}): TarHeader {
  return {
    path,
    type,
    mode: type === "directory" ? 0o755 : 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    mtime: 1_700_000_000,
    ...extra,
  };
}

export function fixtureEntries(opts: FixtureOptions = {}): WriteEntry[] {
  const file = (path: string, body: Buffer, extra: Partial<TarHeader> = {}): WriteEntry => ({
    header: h(path, "file", { size: body.length, ...extra }),
    body,
  });
  const entries: WriteEntry[] = [
    { header: h("boot", "directory") },
    { header: h("etc", "directory") },
    { header: h("usr", "directory") },
    { header: h("usr/bin", "directory") },
    { header: h("dev", "directory") },
    { header: h("home", "directory") },
    { header: h("home/user", "directory", { uid: 1000, gid: 1000, mode: 0o700 }) },
    { header: h("var", "directory") },
    { header: h("var/log", "directory") },
    {
      header: h("var/log/journal", "directory", {
        mode: 0o2755,
        xattrs: new Map([
          ["system.posix_acl_default", Buffer.from([2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff])],
          ["user.note", Buffer.from("kept")],
        ]),
      }),
    },
    file("usr/bin/ping", Buffer.from("#!/bin/sh\necho ping\n"), {
      mode: 0o4755,
      xattrs: new Map([
        ["security.capability", FIXTURE_CAP],
        ["user.binary", FIXTURE_BINARY_XATTR],
      ]),
    }),
    { header: h("usr/bin/ping2", "hardlink", { linkname: "usr/bin/ping", mode: 0o4755 }) },
    { header: h("dev/null", "chardev", { mode: 0o666, devmajor: 1, devminor: 3 }) },
    file("home/user/notes.txt", Buffer.from("mine\n"), { uid: 1000, gid: 1000, mode: 0o600 }),
    file("etc/hostname", Buffer.from("fixture\n")),
  ];
  if (opts.kernel !== false) {
    entries.push(
      file("boot/vmlinuz-6.1.0-test", FIXTURE_KERNEL, { mode: 0o600 }),
      file("boot/initrd.img-6.1.0-test", FIXTURE_INITRD),
      { header: h("vmlinuz", "symlink", { linkname: "boot/vmlinuz-6.1.0-test", mode: 0o777 }) },
      { header: h("initrd.img", "symlink", { linkname: "boot/initrd.img-6.1.0-test", mode: 0o777 }) },
    );
  }
  const release =
    opts.kairosRelease === undefined
      ? 'KAIROS_NAME="kairos-core-fixture"\nKAIROS_VERSION="v0.1.0"\n'
      : opts.kairosRelease;
  if (release !== null) entries.push(file("etc/kairos-release", Buffer.from(release)));
  entries.push(...(opts.extra ?? []));
  return entries;
}

/** Write the fixture rootfs as a tar file. */
export async function writeFixtureTar(path: string, opts: FixtureOptions = {}): Promise<void> {
  await pipeline(Readable.from(writeTar(fixtureEntries(opts))), createWriteStream(path));
}
