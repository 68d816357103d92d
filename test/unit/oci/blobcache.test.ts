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
});
