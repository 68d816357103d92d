import assert from "node:assert/strict";
import { chmodSync, mkdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { FIXTURE_REPO_INPUTS, fixtureKey } from "../../helpers/fixture.js";
import { tempDir } from "../../helpers/tmp.js";

/** A small checkout: a few files in each of the repo inputs, plus docs/ (not an input). */
function makeRepo(repo: string): void {
  for (const d of [
    "src/artifacts",
    "src/sys",
    "framework/boot",
    "scripts",
    "bin",
    "test/helpers",
    "docs",
    "test/e2e",
  ])
    mkdirSync(join(repo, d), { recursive: true });
  writeFileSync(join(repo, "src/artifacts/iso.ts"), "export const iso = 1;\n");
  writeFileSync(join(repo, "src/sys/run.ts"), "export const run = 1;\n");
  writeFileSync(join(repo, "framework/boot/kairos-early-boot.sh"), "#!/bin/sh\n");
  writeFileSync(join(repo, "scripts/build-agent"), "#!/bin/sh\n");
  writeFileSync(join(repo, "bin/kairos"), "#!/bin/sh\n");
  writeFileSync(join(repo, "package.json"), "{}\n");
  writeFileSync(join(repo, "package-lock.json"), '{"lockfileVersion":3}\n');
  writeFileSync(join(repo, "test/helpers/fixture.ts"), "// helper\n");
  writeFileSync(join(repo, "test/e2e/iso-fixture.ts"), "// fixture\n");
  writeFileSync(join(repo, "docs/media.md"), "# docs\n");
}

test("the fixture key changes with every file that goes into a fixture, and only with those", async (t) => {
  const repo = await tempDir(t);
  makeRepo(repo);
  const key = () =>
    fixtureKey({ repo, inputs: { tar: "base.tar" }, files: ["test/e2e/iso-fixture.ts"], tools: "xorriso=1" });
  const seen = new Set<string>();
  let last = key();
  seen.add(last);
  assert.match(last, /^[0-9a-f]{16}$/);
  assert.equal(key(), last, "stable for the same tree");

  const changed = (what: string, change: () => void) => {
    change();
    const k = key();
    assert.notEqual(k, last, `${what} must change the key`);
    assert.ok(!seen.has(k), `${what} gave an earlier key`);
    seen.add(k);
    last = k;
  };
  // Any src file at all, not just the ones a fixture was written with in mind.
  changed("editing src/sys/run.ts", () =>
    writeFileSync(join(repo, "src/sys/run.ts"), "export const run = 2;\n"),
  );
  changed("adding a src file", () => writeFileSync(join(repo, "src/sys/new.ts"), "export {};\n"));
  changed("renaming a src file", () =>
    renameSync(join(repo, "src/sys/new.ts"), join(repo, "src/sys/newer.ts")),
  );
  changed("removing a src file", () => rmSync(join(repo, "src/artifacts/iso.ts")));
  changed("a framework file", () =>
    writeFileSync(join(repo, "framework/boot/kairos-early-boot.sh"), "#!/bin/sh\n:\n"),
  );
  changed("a framework file's exec bit", () =>
    chmodSync(join(repo, "framework/boot/kairos-early-boot.sh"), 0o755),
  );
  changed("a symlink in src", () => symlinkSync("iso.ts", join(repo, "src/artifacts/link.ts")));
  changed("scripts/build-agent", () => writeFileSync(join(repo, "scripts/build-agent"), "#!/bin/sh\necho\n"));
  changed("the lockfile", () => writeFileSync(join(repo, "package-lock.json"), '{"lockfileVersion":4}\n'));
  changed("a test helper", () => writeFileSync(join(repo, "test/helpers/fixture.ts"), "// helper 2\n"));
  changed("the fixture's own file", () =>
    writeFileSync(join(repo, "test/e2e/iso-fixture.ts"), "// fixture 2\n"),
  );

  // Not inputs: docs, and files the fixture does not name.
  writeFileSync(join(repo, "docs/media.md"), "# other docs\n");
  writeFileSync(join(repo, "test/e2e/other.test.ts"), "// test\n");
  assert.equal(key(), last);

  // The values it is built from and the tool versions are inputs too.
  const base = { repo, files: ["test/e2e/iso-fixture.ts"], tools: "xorriso=1" };
  assert.notEqual(fixtureKey({ ...base, inputs: { tar: "other.tar" } }), last);
  assert.notEqual(fixtureKey({ ...base, inputs: { tar: "base.tar" }, tools: "xorriso=2" }), last);
  assert.deepEqual([...FIXTURE_REPO_INPUTS].slice(0, 2), ["src", "framework"]);
});

test("the default tool versions name node and the packages (a missing one still counts)", () => {
  const k1 = fixtureKey({ inputs: 1, tools: "node=v20\nxorriso=1.5.4" });
  const k2 = fixtureKey({ inputs: 1, tools: "node=v20\ndpkg-query: no packages found matching xorriso" });
  assert.notEqual(k1, k2);
});
