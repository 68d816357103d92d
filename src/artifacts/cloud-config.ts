import { readFile } from "node:fs/promises";
import {
  ConfigErrors,
  type ConfigNote,
  formatNote,
  parseCloudConfig,
  validateConfig,
} from "../config/index.js";
import { KairosError } from "../sys/index.js";

/** A cloud-config ready to be embedded in a medium: its text and the warnings it raised. */
export interface MediaCloudConfig {
  file: string;
  text: string;
  warnings: string[];
}

/**
 * Read and validate a cloud-config before anything is built: a missing header, a YAML error
 * or a schema violation is a KairosError naming file:line:col, so no medium is written.
 */
export async function loadCloudConfig(file: string): Promise<MediaCloudConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new KairosError(
      `cannot read cloud-config ${file}: ${code === "ENOENT" ? "no such file" : ((err as Error).message ?? code)}`,
      "pass the path of an existing #cloud-config file",
    );
  }
  return checkCloudConfig(text, file);
}

/** Validate cloud-config text (see loadCloudConfig). */
export function checkCloudConfig(text: string, file: string): MediaCloudConfig {
  const outcome = parseCloudConfig(text, file);
  if ("skipped" in outcome) {
    throw new KairosError(
      `${file}:1:1: not a cloud-config: the first line must be #cloud-config`,
      "add a `#cloud-config` line at the top; without it Kairos ignores the file",
    );
  }
  const { errors, warnings } = validateConfig(outcome.config);
  if (errors.length > 0) throw new ConfigErrors(errors);
  return { file, text, warnings: warnings.map((w: ConfigNote) => formatNote(w)) };
}
