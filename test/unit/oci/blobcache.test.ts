import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { Readable } from "node:stream";
import { describe, it } from "node:test";
import { BlobCache, type Descriptor, sha256 } from "../../../src/oci/index.js";
import { collect } from "../../helpers/tmp.js";

/** A source that hands out `data` in small chunks with a pause between them, counting opens and bytes sent. */
function slowSource(data: Buffer) {
  const stats = { opens: 0, sent: 0 };
  const open = async () => {
    stats.opens++;
    return Readable.from(
      (async function* () {
        for (let off = 0; off < data.length; off += 4096) {
          await new Promise((r) => setTimeout(r, 1));
          const c = data.subarray(off, off + 4096);
          stats.sent += c.length;
          yield c;
        }
      })(),
    );
  };
  return { open, stats };
}

describe("BlobCache", () => {
  const data = randomBytes(200_000);
  const desc: Descriptor = { mediaType: "application/octet-stream", digest: sha256(data), size: data.length };

  it("downloads a blob once, however often and however far it is read", async () => {
    const cache = await BlobCache.create();
    const src = slowSource(data);
    const open = cache.wrap(src.open);
    // A reader that stops after the first chunk (a scan that found what it wanted) ...
    const first = await open(desc);
    for await (const _ of first) break;
    // ... two readers at once, while the download is still running ...
    const [a, b] = await Promise.all([open(desc).then(collect), open(desc).then(collect)]);
    assert.ok(a.equals(data) && b.equals(data));
    // ... and one after it finished.
    assert.ok((await collect(await open(desc))).equals(data));
    assert.equal(src.stats.opens, 1);
    assert.equal(src.stats.sent, data.length);
    assert.equal(cache.bytes, data.length);
    const dir = (cache as unknown as { dir: string }).dir;
    assert.ok(existsSync(dir));
    await cache.close();
    assert.ok(!existsSync(dir), "close() removes the cache");
  });

  it("is bounded: a blob over maxBytes is read from the source each time", async () => {
    const cache = await BlobCache.create({ maxBytes: data.length - 1 });
    const src = slowSource(data);
    const open = cache.wrap(src.open);
    assert.ok((await collect(await open(desc))).equals(data));
    assert.ok((await collect(await open(desc))).equals(data));
    assert.equal(src.stats.opens, 2);
    assert.equal(cache.bytes, 0);
    await cache.close();
  });

  it("a failed download is not served again: the next read starts afresh", async () => {
    const cache = await BlobCache.create();
    let opens = 0;
    const open = cache.wrap(async () => {
      opens++;
      if (opens === 1) {
        return Readable.from(
          (async function* () {
            yield data.subarray(0, 1000);
            throw new Error("connection reset");
          })(),
        );
      }
      return Readable.from([data]);
    });
    await assert.rejects(collect(await open(desc)), /connection reset/);
    assert.ok((await collect(await open(desc))).equals(data));
    assert.equal(opens, 2);
    await cache.close();
  });

  it("keeps 1 GiB free counting every blob it has taken on, so parallel downloads cannot fill the disk", async () => {
    // 2.5 GiB free: one 1 GiB blob fits (1.5 GiB left), a second one started beside it would
    // leave 0.5 GiB once both are written, so it is read from the source instead.
    const gib = 1024 ** 3;
    const cache = await BlobCache.create({ freeBytes: async () => 2.5 * gib });
    const big = (b: Buffer): Descriptor => ({
      mediaType: "application/octet-stream",
      digest: sha256(b),
      size: gib,
    });
    const d1 = randomBytes(1000);
    const d2 = randomBytes(1000);
    const s1 = slowSource(d1);
    const s2 = slowSource(d2);
    const o1 = cache.wrap(s1.open);
    const o2 = cache.wrap(s2.open);
    await Promise.all([open2(o1, big(d1)), open2(o2, big(d2))]);
    assert.equal(s1.stats.opens + s2.stats.opens, 3, "one blob cached (1 open), the other read twice");
    assert.equal(cache.bytes, gib);
    await cache.close();
  });
});

/** Open the blob twice, one read after the other, reading each to the end. */
async function open2(open: (d: Descriptor) => Promise<Readable>, d: Descriptor): Promise<void> {
  await collect(await open(d));
  await collect(await open(d));
}
