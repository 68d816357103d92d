/**
 * `kairos-agent interactive-install`: a plain terminal dialogue (disk, user, password or SSH
 * key, confirm) that produces the cloud-config the install follows and writes to COS_OEM.
 */
import { createInterface } from "node:readline/promises";
import type { Readable, Writable } from "node:stream";
import { stringify } from "yaml";
import { KairosError } from "../sys/index.js";
import { type Disk, listDisks } from "./install-disks.js";

export interface DialogueResult {
  device: string;
  config: Record<string, unknown>;
  /** The cloud-config text written to COS_OEM. */
  text: string;
}

const gib = (b: number) => `${(b / 1024 ** 3).toFixed(1)} GiB`;

/** Ask the questions on `input`/`output`; undefined when the user does not confirm. */
export async function installDialogue(
  input: Readable,
  output: Writable,
  disks?: Disk[],
): Promise<DialogueResult | undefined> {
  const rl = createInterface({ input, output, terminal: false });
  const lines = rl[Symbol.asyncIterator]();
  const ask = async (q: string): Promise<string> => {
    output.write(q);
    const r = await lines.next();
    if (r.done) throw new KairosError("interactive-install: input ended before the dialogue was complete");
    return String(r.value).trim();
  };
  try {
    const all = disks ?? (await listDisks());
    if (!all.length) throw new KairosError("no disks found to install to");
    output.write("Disks:\n");
    for (const d of all) output.write(`  ${d.device}  ${gib(d.bytes)}\n`);
    const largest = [...all].sort((a, b) => b.bytes - a.bytes)[0]!;
    let device = "";
    while (!device) {
      const a = (await ask(`Disk to install to [${largest.device}]: `)) || largest.device;
      if (all.some((d) => d.device === a) || a.startsWith("/dev/disk/")) device = a;
      else output.write(`  ${a} is not one of the disks above\n`);
    }
    let user = "";
    while (!user) {
      const a = (await ask("User name [kairos]: ")) || "kairos";
      if (/^[a-z_][a-z0-9_-]{0,31}$/.test(a)) user = a;
      else output.write("  use lower-case letters, digits, _ or - (at most 32)\n");
    }
    const entry: Record<string, unknown> = { name: user, groups: ["admin"] };
    for (;;) {
      const pw = await ask("Password (empty to give an SSH public key instead): ");
      if (pw) {
        entry.passwd = pw;
        break;
      }
      const key = await ask("SSH public key (ssh-ed25519 …, or github:USER): ");
      if (/^(ssh-|ecdsa-|sk-|github:|gitlab:)/.test(key)) {
        entry.ssh_authorized_keys = [key];
        break;
      }
      output.write("  a password or an SSH key is needed to log in to the installed system\n");
    }
    const ok = await ask(`Install to ${device}? Everything on it is erased. [y/N]: `);
    if (!/^y(es)?$/i.test(ok)) {
      output.write("Not installing.\n");
      return undefined;
    }
    const config: Record<string, unknown> = { install: { device }, users: [entry] };
    return { device, config, text: `#cloud-config\n${stringify(config)}` };
  } finally {
    rl.close();
  }
}
