import { readFile } from "node:fs/promises";
import { KairosError } from "../sys/index.js";

export interface BootEntry {
  id: string;
  title: string;
  /** Which file declared it (the system's grub.cfg, or COS_OEM's grubmenu). */
  file: string;
}

/**
 * The entries of GRUB configuration text: `menuentry "TITLE" … --id ID {` (also `--id=ID`,
 * single quotes). Entries without an id cannot be selected through next_entry and are skipped.
 */
export function parseBootEntries(text: string, file: string): BootEntry[] {
  const out: BootEntry[] = [];
  const re = /^\s*menuentry\s+(["'])(.*?)\1([^{\n]*)\{/gm;
  for (const m of text.matchAll(re)) {
    const id = /--id(?:=|\s+)(["']?)([^\s"']+)\1/.exec(m[3]!)?.[2];
    if (id) out.push({ id, title: m[2]!, file });
  }
  return out;
}

/** Entries of every file that exists, in order, first declaration of an id wins. */
export async function listBootEntries(files: readonly string[]): Promise<BootEntry[]> {
  const seen = new Map<string, BootEntry>();
  for (const f of files) {
    const text = await readFile(f, "utf8").catch(() => undefined);
    if (text === undefined) continue;
    for (const e of parseBootEntries(text, f)) if (!seen.has(e.id)) seen.set(e.id, e);
  }
  return [...seen.values()];
}

/** Check that `id` is one of the entries (a typo would otherwise boot the default silently). */
export function requireEntry(entries: readonly BootEntry[], id: string): BootEntry {
  const e = entries.find((x) => x.id === id);
  if (!e) {
    throw new KairosError(
      `no boot entry '${id}'`,
      entries.length
        ? `entries: ${entries.map((x) => x.id).join(", ")}`
        : "no GRUB configuration with entries was found on this node",
    );
  }
  return e;
}
