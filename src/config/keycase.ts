import { isMap, isScalar, isSeq, type Node, type Scalar } from "yaml";
import { ConfigError } from "./errors.js";
import { CLOUD_CONFIG_SCHEMA } from "./schema.js";

type Schema = Record<string, unknown>;

/**
 * The blocks upstream's kairos-agent reads through viper (`unmarshallFullSpec` in
 * pkg/config/spec.go: viper.ReadConfig, then viper.Sub("install"|"upgrade"|"reset")), whose
 * keys viper lower-cases all the way down (maps in lists too) and which mapstructure then
 * matches to the spec's fields ignoring case. So `extra-partitions: - Name: p` means `name`.
 */
export const CASE_INSENSITIVE_BLOCKS = ["install", "upgrade", "reset"] as const;

/** The known keys of a schema node that describes a map (a struct, not free-form data). */
function knownKeys(s: Schema | undefined): Record<string, Schema> | undefined {
  if (!s) return undefined;
  if (s.properties) return s.properties as Record<string, Schema>;
  if (Array.isArray(s.anyOf)) {
    for (const alt of s.anyOf as Schema[])
      if (alt.properties) return alt.properties as Record<string, Schema>;
  }
  return undefined;
}

function itemSchema(s: Schema | undefined): Schema | undefined {
  if (!s) return undefined;
  if (s.items) return s.items as Schema;
  if (Array.isArray(s.anyOf)) {
    for (const alt of s.anyOf as Schema[]) if (alt.items) return alt.items as Schema;
  }
  return undefined;
}

/**
 * Rename, in the YAML tree, every key under install/upgrade/reset whose spelling differs only in
 * case from a key we know there (`Name` → `name`, `Device` → `device`), so the validator, the
 * merge and every consumer see the canonical name and positions stay those of the source. Keys
 * we do not know keep their spelling (the validator warns about them); free-form maps (items of
 * `install.env`, …) are data and keep theirs. Two keys that become the same are refused.
 */
export function canonicalizeKeyCase(
  root: Node | null,
  file: string,
  at: (offset: number) => { line: number; col: number },
): void {
  if (!root || !isMap(root)) return;
  const top = CLOUD_CONFIG_SCHEMA.properties as Record<string, Schema>;
  for (const pair of root.items) {
    if (!isScalar(pair.key)) continue;
    const name = String(pair.key.value);
    if (!(CASE_INSENSITIVE_BLOCKS as readonly string[]).includes(name)) continue;
    walk(pair.value as Node | null, top[name], [name], file, at);
  }
}

function walk(
  node: Node | null,
  schema: Schema | undefined,
  path: (string | number)[],
  file: string,
  at: (offset: number) => { line: number; col: number },
): void {
  if (!node || !schema) return;
  if (isSeq(node)) {
    const items = itemSchema(schema);
    node.items.forEach((item, i) => {
      walk(item as Node | null, items, [...path, i], file, at);
    });
    return;
  }
  const props = knownKeys(schema);
  if (!isMap(node) || !props) return;
  const byLower = new Map<string, string>();
  for (const k of Object.keys(props)) byLower.set(k.toLowerCase(), k);
  const seen = new Map<string, { written: string; offset: number }>();
  for (const pair of node.items) {
    if (!isScalar(pair.key) || typeof pair.key.value !== "string") continue;
    const key = pair.key as Scalar<string>;
    const written = key.value;
    const canonical = Object.hasOwn(props, written) ? written : byLower.get(written.toLowerCase());
    if (canonical === undefined) continue;
    const earlier = seen.get(canonical);
    if (earlier) {
      const here = at(key.range?.[0] ?? 0);
      const there = at(earlier.offset);
      throw new ConfigError(
        file,
        here.line,
        here.col,
        path,
        `duplicate key ${JSON.stringify(written)}: the same key as ${JSON.stringify(earlier.written)} at ${there.line}:${there.col} (keys under ${path[0]} are read regardless of case, as upstream's viper does)`,
        "keep one of them",
      );
    }
    key.value = canonical;
    seen.set(canonical, { written, offset: key.range?.[0] ?? 0 });
    walk(pair.value as Node | null, props[canonical], [...path, canonical], file, at);
  }
}
