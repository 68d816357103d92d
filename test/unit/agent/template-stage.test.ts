import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { runStage } from "../../../src/agent/index.js";

const top = mkdtempSync(join(tmpdir(), "kairos-tpl-"));
after(() => rmSync(top, { recursive: true, force: true }));

function newRoot(): string {
  const r = mkdtempSync(join(top, "root-"));
  mkdirSync(join(r, "etc"));
  writeFileSync(join(r, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
  writeFileSync(join(r, "etc/group"), "root:x:0:\n");
  writeFileSync(join(r, "etc/hostname"), "builder\n");
  writeFileSync(
    join(r, "etc/os-release"),
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
  );
  return r;
}

describe("templates at stage-run time", () => {
  it("renders .Random in a hostname (upstream's auto-install asset) and .Values in files and commands", async () => {
    const root = newRoot();
    const lines: string[] = [];
    const report = await runStage("boot", {
      root,
      log: (l) => lines.push(l),
      config: {
        stages: {
          boot: [
            {
              hostname: "kairos-{{ trunc 4 .Random }}",
              files: [
                {
                  path: "/etc/motd",
                  content: "Welcome to {{ .Values.os.name }} on {{ .Values.node.hostname }}\n",
                },
              ],
              commands: ['echo "{{ .Values.os.vendor | upper }}" > "$KAIROS_ROOT/vendor"'],
            },
          ],
        },
      },
    });
    assert.equal(report.failed, 0, lines.join("\n"));
    assert.match(readFileSync(join(root, "etc/hostname"), "utf8"), /^kairos-[0-9a-z]{4}\n$/);
    // files run before hostname within a step (yip's order), so the old hostname is seen
    assert.equal(
      readFileSync(join(root, "etc/motd"), "utf8"),
      "Welcome to Debian GNU/Linux 12 (bookworm) on builder\n",
    );
    assert.equal(readFileSync(join(root, "vendor"), "utf8"), "DEBIAN\n");
  });
  it("fails the step, naming the function, when a command's template calls an unknown one", async () => {
    const root = newRoot();
    const report = await runStage("boot", {
      root,
      log: () => {},
      config: { stages: { boot: [{ commands: ["echo {{ nope }}"] }] } },
    });
    assert.equal(report.failed, 1);
    assert.match(report.steps[0]!.reason!, /unknown template function nope/);
  });
});
