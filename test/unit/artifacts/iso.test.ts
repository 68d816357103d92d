import assert from "node:assert/strict";
import { test } from "node:test";
import { isoModificationDate, resolveSourceDateEpoch, xorrisoArgs } from "../../../src/artifacts/iso.js";

test("source date epoch: explicit value, else SOURCE_DATE_EPOCH, else now", () => {
  assert.equal(resolveSourceDateEpoch(1700000000, { SOURCE_DATE_EPOCH: "5" }), 1700000000);
  assert.equal(resolveSourceDateEpoch(undefined, { SOURCE_DATE_EPOCH: "1600000000" }), 1600000000);
  assert.equal(resolveSourceDateEpoch(undefined, { SOURCE_DATE_EPOCH: "0" }), 0);
  const now = Math.floor(Date.now() / 1000);
  for (const env of [{}, { SOURCE_DATE_EPOCH: "" }]) {
    const got = resolveSourceDateEpoch(undefined, env);
    assert.ok(got >= now && got <= now + 5, `${got} is now`);
  }
});

test("a malformed SOURCE_DATE_EPOCH or epoch option is refused, not ignored", () => {
  for (const bad of ["abc", "-1", "1.5", " 1700000000", "1e9", "99999999999"]) {
    assert.throws(
      () => resolveSourceDateEpoch(undefined, { SOURCE_DATE_EPOCH: bad }),
      /SOURCE_DATE_EPOCH=.* is not valid/,
      bad,
    );
  }
  for (const bad of [-1, 1.5, Number.NaN, 5_000_000_000]) {
    assert.throws(() => resolveSourceDateEpoch(bad, {}), /source date epoch .* is not valid/, String(bad));
  }
});

test("xorriso's modification date is the epoch in UTC, centiseconds 00", () => {
  assert.equal(isoModificationDate(1700000000), "2023111422132000");
  assert.equal(isoModificationDate(0), "1970010100000000");
});

test("with an epoch xorriso gets fixed dates, GPT GUIDs from the date, root owner and pinned graft modes", () => {
  const base = {
    out: "/o.iso",
    label: "COS_LIVE",
    mbr: "/mbr",
    efiImage: "/efi.img",
    roots: ["/tree"],
    grafts: { "/boot/kernel": "/k", "/rootfs.squashfs": "/s" },
  };
  const plain = xorrisoArgs(base).join(" ");
  assert.doesNotMatch(plain, /modification-date|set_all_file_dates|-uid|-chmod/);
  const a = xorrisoArgs({ ...base, epoch: 1700000000 });
  const s = a.join(" ");
  assert.match(s, /--modification-date=2023111422132000/);
  assert.match(s, /--set_all_file_dates =1700000000/);
  assert.match(s, /--gpt_disk_guid modification-date/);
  assert.match(s, /-uid 0 -gid 0/);
  // The native chmod comes after the mkisofs emulation ends.
  assert.deepEqual(a.slice(-6), ["--", "-chmod", "0644", "/boot/kernel", "/rootfs.squashfs", "--"]);
});
