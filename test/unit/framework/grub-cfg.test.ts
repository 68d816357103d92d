/** framework/grub/grub.cfg against docs/lifecycle.md: GRUB accepts it, entry ids and command lines are upstream's. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { run } from "../../../src/sys/index.js";

const CFG = join(import.meta.dirname, "..", "..", "..", "framework", "grub", "grub.cfg");
const text = readFileSync(CFG, "utf8");

test("grub-script-check accepts the installed grub.cfg", async () => {
  await run("grub-script-check", [CFG]);
});

test("entry ids cos, fallback, recovery, statereset with upstream's command lines and slot files", () => {
  const entries = [...text.matchAll(/menuentry "[^"]*" --id (\w+) \{\n([\s\S]*?)\n\}/g)].map((m) => [
    m[1],
    m[2]!,
  ]);
  assert.deepEqual(
    entries.map((e) => e[0]),
    ["cos", "fallback", "recovery", "statereset"],
  );
  const body = Object.fromEntries(entries) as Record<string, string>;
  const common = /\$\{kairos_cmdline\} \$\{extra_cmdline\}/;
  assert.match(
    text,
    /set kairos_cmdline="rd\.emergency=reboot rd\.shell=0 panic=5 systemd\.crash_reboot=yes"/,
  );
  assert.match(
    body.cos!,
    /linux \(\$\{state\}\)\/cOS\/active\/vmlinuz .*root=LABEL=COS_ACTIVE cos-img\/filename=\/cOS\/active\.img/,
  );
  assert.match(body.cos!, /\$\{extra_active_cmdline\}/);
  assert.match(body.cos!, /initrd \(\$\{state\}\)\/cOS\/active\/initrd/);
  assert.match(
    body.fallback!,
    /root=LABEL=COS_PASSIVE cos-img\/filename=\/cOS\/passive\.img .*\$\{extra_passive_cmdline\}/,
  );
  assert.match(
    body.recovery!,
    /\(\$\{recovery\}\)\/cOS\/recovery\/vmlinuz .*root=LABEL=COS_SYSTEM cos-img\/filename=\/cOS\/recovery\.img/,
  );
  assert.match(body.statereset!, /root=LABEL=COS_SYSTEM .*\$\{extra_recovery_cmdline\} kairos\.reset/);
  for (const [id, b] of entries) assert.match(b!, common, id);
});

test("grubenv on COS_OEM: next_entry is one-shot, then saved_entry, then the boot assessment", () => {
  assert.match(text, /load_env -f "\(\$\{oem\}\)\/grubenv"/);
  const next = text.indexOf('set default="${next_entry}"');
  const saved = text.indexOf('set default="${saved_entry}"');
  const assess = text.indexOf('if [ "${default}" = "cos" ]');
  assert.ok(
    saved > 0 && next > saved && assess > next,
    "saved_entry, then next_entry overrides, then assessment",
  );
  assert.match(
    text.slice(next, assess),
    /set next_entry=\n\s*if \[ -n "\$\{oem\}" \]; then save_env -f "\(\$\{oem\}\)\/grubenv" next_entry; fi/,
  );
  const a = text.slice(assess);
  assert.match(a, /"\$\{upgrade_failure\}" = "1" \]; then\n\s*set default=fallback/);
  assert.match(
    a,
    /"\$\{fallback_assessment\}" = "tried" \]; then\n\s*set default=recovery\n\s*else\n\s*set fallback_assessment=tried\n.*save_env .*fallback_assessment; fi/,
    "a fallback that never confirmed leads to recovery, not a loop",
  );
  assert.match(
    a,
    /"\$\{boot_assessment\}" = "trial" \]; then\n\s*set boot_assessment=tried\n\s*.*save_env -f "\(\$\{oem\}\)\/grubenv" boot_assessment/,
  );
  assert.match(
    a,
    /"\$\{boot_assessment\}" = "tried" \]; then\n\s*set upgrade_failure=1\n\s*set boot_assessment=\n\s*set fallback_assessment=tried\n.*save_env .*upgrade_failure boot_assessment fallback_assessment; fi\n\s*set default=fallback/,
  );
  assert.match(text, /source "\(\$\{oem\}\)\/grubcustom"/);
  assert.match(text, /source "\(\$\{oem\}\)\/grubmenu"/);
  assert.match(text, /set fallback="\$\{default_fallback\}"/);
});
