/**
 * scripts/config-validator.ts: the validator scripts/build-agent compiles into the agent (Ajv
 * standalone code) judges configs exactly as the one src/config/validate.ts compiles at run
 * time: same verdicts, same errors.
 */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { test } from "node:test";
import { Ajv, type ValidateFunction } from "ajv";
import { configValidatorSource } from "../../../scripts/config-validator.js";
import { CONFIG_VALIDATOR_OPTIONS, validatedConfigSchema } from "../../../src/config/index.js";

const REPO = join(import.meta.dirname, "..", "..", "..");

const CONFIGS: unknown[] = [
  {},
  { users: [{ name: "kairos", passwd: "x", groups: ["admin"] }], install: { device: "auto", auto: true } },
  { users: [{ name: 5, groups: "nope" }], install: { device: 7, auto: "x" } },
  { stages: { rootfs: [{ files: 3 }], initramfs: [{ commands: ["true"], if: "[ -f /x ]" }] } },
  { stages: { boot: null }, ssh_authorized_keys: null, "x-unknown": { a: 1 } },
  { install: { partitions: { oem: { size: "big" } } }, upgrade: { source: 1 } },
];

test("the build-time validator gives the run-time validator's verdicts and errors", (t) => {
  // Inside the repository, so its require("ajv/dist/runtime/…") resolves; build/ does not exist
  // in a fresh clone (CI) until something is built.
  mkdirSync(join(REPO, "build"), { recursive: true });
  const dir = mkdtempSync(join(REPO, "build", ".validator-test-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, "validator.cjs");
  writeFileSync(file, configValidatorSource());
  const mod = createRequire(file)(file) as { default: ValidateFunction };
  const built = mod.default;
  const runtime = new Ajv(CONFIG_VALIDATOR_OPTIONS).compile(validatedConfigSchema());
  const errs = (v: ValidateFunction) =>
    (v.errors ?? []).map((e) => ({ path: e.instancePath, keyword: e.keyword, params: e.params }));
  let invalid = 0;
  for (const c of CONFIGS) {
    const ok = runtime(structuredClone(c));
    assert.equal(built(structuredClone(c)), ok, JSON.stringify(c));
    assert.deepEqual(errs(built), errs(runtime), JSON.stringify(c));
    if (!ok) invalid++;
  }
  assert.ok(invalid >= 2, "some of the configs are refused (the comparison covers errors)");
});
