/**
 * Prints the cloud-config validator as CommonJS source (Ajv's standalone code generation): the
 * same options and schema src/config/validate.ts compiles at run time. scripts/build-agent
 * injects it into the agent, so the node never compiles the schema (docs/benchmarks.md).
 *
 *   node --import tsx scripts/config-validator.ts > validator.cjs
 */
import { Ajv } from "ajv";
import standalone from "ajv/dist/standalone/index.js";
import { CONFIG_VALIDATOR_OPTIONS, validatedConfigSchema } from "../src/config/index.js";

/** The validator's source: a CommonJS module whose default export is the validate function. */
export function configValidatorSource(): string {
  const ajv = new Ajv({ ...CONFIG_VALIDATOR_OPTIONS, code: { source: true } });
  return standalone.default(ajv, ajv.compile(validatedConfigSchema()));
}

if (process.argv[1] && import.meta.filename === process.argv[1])
  process.stdout.write(configValidatorSource());
