import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { lockedFixture } from "../../helpers/fixture.js";
import { tempDir } from "../../helpers/tmp.js";

test("lockedFixture: concurrent callers build once; the others read what the first published", async (t) => {
  const dir = join(await tempDir(t), "fx-key");
  const meta = `${dir}.json`;
  let builds = 0;
  const cached = () =>
    existsSync(meta) ? (JSON.parse(readFileSync(meta, "utf8")) as { n: number }) : undefined;
  const build = async () => {
    builds++;
    await new Promise((r) => setTimeout(r, 300));
    writeFileSync(meta, JSON.stringify({ n: builds }));
    return { n: builds };
  };
  const got = await Promise.all([1, 2, 3].map(() => lockedFixture(dir, cached, build)));
  assert.equal(builds, 1);
  assert.deepEqual(got, [{ n: 1 }, { n: 1 }, { n: 1 }]);
});
