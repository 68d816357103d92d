import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type ParsedConfig, parseCloudConfig } from "../../../src/config/index.js";

export const FIXTURES = join(import.meta.dirname, "../../fixtures/cloud-config");

export function fixture(name: string): string {
  return readFileSync(join(FIXTURES, name), "utf8");
}

/** Parse text that must be a config (throws if it was skipped). */
export function parse(text: string, file = "test.yaml"): ParsedConfig {
  const out = parseCloudConfig(text, file);
  if ("skipped" in out) throw new Error(`unexpectedly skipped: ${out.skipped.message}`);
  return out.config;
}
