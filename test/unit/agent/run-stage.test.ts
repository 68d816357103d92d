import assert from "node:assert/strict";
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gzipSync } from "node:zlib";
import { parse as parseYaml } from "yaml";
import { runStage, StageFailedError, verifySha512crypt } from "../../../src/agent/index.js";

let top: string;
let server: Server;
let keysBase: string;

before(async () => {
  top = mkdtempSync(join(tmpdir(), "kairos-stage-"));
  server = createServer((req, res) => {
    if (req.url === "/files/tool.sh") {
      res.end("#!/bin/sh\necho tool\n");
    } else if (req.url === "/octocat.keys") {
      res.end("ssh-ed25519 AAAAfetched1 octocat\nssh-rsa AAAAfetched2 octocat\n");
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  keysBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

after(() => {
  server.close();
  rmSync(top, { recursive: true, force: true });
});

/** A small root: account files, a machine id, an os-release and one unit. */
function newRoot(): string {
  const r = mkdtempSync(join(top, "root-"));
  mkdirSync(join(r, "etc"));
  writeFileSync(
    join(r, "etc/passwd"),
    "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
  );
  writeFileSync(join(r, "etc/shadow"), "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", {
    mode: 0o640,
  });
  writeFileSync(join(r, "etc/group"), "root:x:0:\nshadow:x:42:\nnogroup:x:65534:\n");
  writeFileSync(join(r, "etc/machine-id"), "4f1c2a3b9d8e7f60112233445566778899\n");
  writeFileSync(join(r, "etc/os-release"), 'ID=debian\nVERSION_ID="12"\n');
  mkdirSync(join(r, "usr/lib/systemd/system"), { recursive: true });
  writeFileSync(
    join(r, "usr/lib/systemd/system/sshd.service"),
    "[Unit]\nDescription=ssh\n[Service]\nExecStart=/usr/sbin/sshd -D\n[Install]\nWantedBy=multi-user.target\nAlias=ssh.service\n",
  );
  writeFileSync(
    join(r, "usr/lib/systemd/system/getty@.service"),
    "[Service]\nExecStart=/sbin/agetty\n[Install]\nWantedBy=getty.target\n",
  );
  return r;
}

function cfg(yaml: string): Record<string, unknown> {
  return parseYaml(yaml, { version: "1.1" }) as Record<string, unknown>;
}

async function stage(root: string, name: string, yaml: string, strict?: boolean) {
  const lines: string[] = [];
  const report = await runStage(name, {
    root,
    config: cfg(yaml),
    log: (l) => lines.push(l),
    strict,
    keyServers: { github: keysBase },
  });
  return { report, lines };
}

const read = (root: string, p: string) => readFileSync(join(root, p), "utf8");
const mode = (root: string, p: string) => statSync(join(root, p)).mode & 0o7777;
const owner = (root: string, p: string) => {
  const s = statSync(join(root, p));
  return `${s.uid}:${s.gid}`;
};

describe("run-stage: users, passwords, groups, keys", () => {
  it("creates users in passwd/shadow/group with hashed passwords, home and keys, and is idempotent", async () => {
    const root = newRoot();
    const yaml = `
users:
- name: kairos
  passwd: kairos
  groups: [admin, wheel]
  ssh_authorized_keys: ["ssh-ed25519 AAAAlocal kairos@host", "github:octocat"]
- name: ops
  passwd: "$6$abc$alreadyhashedvalue"
  shell: /bin/bash
  lock_passwd: true
`;
    const { report, lines } = await stage(root, "boot", yaml);
    assert.equal(report.failed, 0, lines.join("\n"));
    assert.match(read(root, "etc/passwd"), /^kairos:x:1000:1000::\/home\/kairos:\/bin\/sh$/m);
    const opsGid = /^ops:x:1001:(\d+)::\/home\/ops:\/bin\/bash$/m.exec(read(root, "etc/passwd"))?.[1];
    assert.ok(opsGid, read(root, "etc/passwd"));
    assert.match(read(root, "etc/group"), new RegExp(`^ops:x:${opsGid}:$`, "m"));
    const shadow = read(root, "etc/shadow");
    const kh = /^kairos:([^:]+):/m.exec(shadow)![1]!;
    assert.match(kh, /^\$6\$/);
    assert.ok(verifySha512crypt("kairos", kh), "the stored hash verifies the configured password");
    assert.match(shadow, /^ops:!\$6\$abc\$alreadyhashedvalue:/m);
    assert.match(read(root, "etc/group"), /^admin:x:\d+:kairos$/m);
    assert.match(read(root, "etc/group"), /^wheel:x:\d+:kairos$/m);
    assert.equal(mode(root, "etc/shadow"), 0o640, "existing mode of /etc/shadow is kept");
    assert.equal(mode(root, "home/kairos"), 0o700);
    assert.equal(owner(root, "home/kairos"), "1000:1000");
    assert.equal(mode(root, "home/kairos/.ssh"), 0o700);
    assert.equal(mode(root, "home/kairos/.ssh/authorized_keys"), 0o600);
    assert.equal(owner(root, "home/kairos/.ssh/authorized_keys"), "1000:1000");
    assert.equal(
      read(root, "home/kairos/.ssh/authorized_keys"),
      "ssh-ed25519 AAAAlocal kairos@host\nssh-ed25519 AAAAfetched1 octocat\nssh-rsa AAAAfetched2 octocat\n",
    );
    const before = ["etc/passwd", "etc/shadow", "etc/group", "home/kairos/.ssh/authorized_keys"].map((p) =>
      read(root, p),
    );
    const again = await stage(root, "boot", yaml);
    assert.equal(again.report.failed, 0);
    const afterRun = ["etc/passwd", "etc/shadow", "etc/group", "home/kairos/.ssh/authorized_keys"].map((p) =>
      read(root, p),
    );
    assert.deepEqual(
      afterRun,
      before,
      "a second run changes nothing (same salt kept for an unchanged password)",
    );
    assert.ok(again.lines.some((l) => /account files unchanged/.test(l)));
  });

  it("step users: keys from ssh_authorized_keys, '!' stored as a lock marker, lock_passwd keeps the hash", async () => {
    const root = newRoot();
    const { report, lines } = await stage(
      root,
      "initramfs",
      `stages:
  initramfs:
  - users:
      kairos:
        passwd: "!"
        shell: /bin/bash
        groups: [admin]
        ssh_authorized_keys: [ssh-ed25519 AAAAstep k@h]
      locked:
        passwd: "$6$salt$hash"
        lock_passwd: true
`,
    );
    assert.equal(report.failed, 0, lines.join("\n"));
    assert.match(read(root, "etc/shadow"), /^kairos:!:/m);
    assert.match(read(root, "etc/shadow"), /^locked:!\$6\$salt\$hash:/m);
    assert.equal(read(root, "home/kairos/.ssh/authorized_keys"), "ssh-ed25519 AAAAstep k@h\n");
  });

  it("a user listed in two config files is one user: groups and keys add up, later scalars win", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "boot",
      "users:\n- name: k\n  shell: /bin/sh\n  groups: [a]\n  ssh_authorized_keys: [ssh-ed25519 AAAA1 x]\n- name: k\n  shell: /bin/bash\n  groups: [b]\n  ssh_authorized_keys: [ssh-ed25519 AAAA2 y]\n",
    );
    assert.equal(report.failed, 0);
    assert.match(read(root, "etc/passwd"), /^k:x:1000:1000::\/home\/k:\/bin\/bash$/m);
    assert.match(read(root, "etc/group"), /^a:x:\d+:k$/m);
    assert.match(read(root, "etc/group"), /^b:x:\d+:k$/m);
    assert.equal(read(root, "home/k/.ssh/authorized_keys"), "ssh-ed25519 AAAA1 x\nssh-ed25519 AAAA2 y\n");
  });

  it("ensure_entities / delete_entities edit passwd, shadow and group lines as yip entities", async () => {
    const root = newRoot();
    const yaml = `stages:
  initramfs:
  - name: groups
    ensure_entities:
    - entity: |
        kind: "group"
        group_name: "admin"
        password: "x"
        gid: 900
    - path: /etc/passwd
      entity: |
        kind: "user"
        username: "svc"
        password: "x"
        uid: 901
        gid: 900
        info: "service"
        homedir: "/srv/svc"
        shell: "/usr/sbin/nologin"
    - entity: |
        kind: "shadow"
        username: "svc"
        password: "s3cret"
        last_changed: "now"
  - name: users
    users:
      kairos:
        groups: [admin]
  - name: drop nobody
    delete_entities:
    - entity: |
        kind: "user"
        username: "nobody"
`;
    writeFileSync(join(root, "etc/gshadow"), "root:*::\nshadow:*::\n");
    const first = await stage(root, "initramfs", yaml);
    assert.equal(first.report.failed, 0, first.lines.join("\n"));
    assert.match(read(root, "etc/group"), /^admin:x:900:kairos$/m);
    assert.match(read(root, "etc/gshadow"), /^admin:!::kairos$/m, "gshadow follows group");
    assert.match(read(root, "etc/passwd"), /^svc:x:901:900:service:\/srv\/svc:\/usr\/sbin\/nologin$/m);
    assert.doesNotMatch(read(root, "etc/passwd"), /^nobody:/m);
    const svc = /^svc:([^:]*):(\d+):/m.exec(read(root, "etc/shadow"))!;
    assert.ok(verifySha512crypt("s3cret", svc[1]!), "plain shadow passwords are hashed");
    assert.equal(Number(svc[2]), Math.floor(Date.now() / 86400000));
    const snapshot = ["etc/passwd", "etc/shadow", "etc/group", "etc/gshadow"].map((p) => read(root, p));
    const second = await stage(root, "initramfs", yaml);
    assert.equal(second.report.failed, 0);
    assert.deepEqual(
      ["etc/passwd", "etc/shadow", "etc/group", "etc/gshadow"].map((p) => read(root, p)),
      snapshot,
      "running again changes nothing (group members kept, hash reused)",
    );
  });

  it("refuses entities of an unknown kind or aimed at another file", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "boot",
      'stages:\n  boot:\n  - ensure_entities:\n    - entity: "kind: printer"\n  - ensure_entities:\n    - path: /etc/shadow\n      entity: "kind: user\\nusername: x"\n',
    );
    assert.deepEqual(
      report.steps.map((x) => x.status),
      ["failed", "failed"],
    );
    assert.match(report.steps[0]!.reason!, /unsupported entity kind "printer"/);
    assert.match(report.steps[1]!.reason!, /belongs in \/etc\/passwd, not \/etc\/shadow/);
  });

  it("changes the hash when the password changes", async () => {
    const root = newRoot();
    await stage(root, "boot", "users:\n- name: k\n  passwd: one\n");
    const h1 = /^k:([^:]+):/m.exec(read(root, "etc/shadow"))![1]!;
    await stage(root, "boot", "users:\n- name: k\n  passwd: two\n");
    const h2 = /^k:([^:]+):/m.exec(read(root, "etc/shadow"))![1]!;
    assert.notEqual(h1, h2);
    assert.ok(verifySha512crypt("two", h2));
  });

  it("refuses a user name or field that would corrupt /etc/passwd", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "boot",
      'users:\n- name: "evil:x:0:0"\n- name: ok\n  shell: "/bin/sh\\nroot2:x:0:0::/:/bin/sh"\n',
    );
    assert.equal(report.failed, 1);
    assert.doesNotMatch(read(root, "etc/passwd"), /evil|root2/);
  });

  it("puts top-level ssh_authorized_keys on root when no users are defined", async () => {
    const root = newRoot();
    const { report } = await stage(root, "boot", "ssh_authorized_keys: [ssh-ed25519 AAAAroot r@h]\n");
    assert.equal(report.failed, 0);
    assert.equal(read(root, "root/.ssh/authorized_keys"), "ssh-ed25519 AAAAroot r@h\n");
    assert.equal(mode(root, "root/.ssh/authorized_keys"), 0o600);
  });

  it("fails the keys step for an unknown user", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "boot",
      "stages:\n  boot:\n  - authorized_keys:\n      ghost: [ssh-ed25519 AAAA g]\n",
    );
    assert.equal(report.failed, 1);
    assert.match(report.steps[0]!.reason!, /user ghost does not exist/);
  });
});

describe("run-stage: files, directories, hostname, systemctl, environment, dns", () => {
  it("writes files with content, mode, owner and encodings; directories with modes", async () => {
    const root = newRoot();
    const gz = gzipSync("zipped\n").toString("base64");
    const { report, lines } = await stage(
      root,
      "initramfs",
      `
users: []
stages:
  initramfs:
  - name: files
    files:
    - path: /etc/issue.d/kairos
      content: "hello\\n"
      permissions: 0640
      owner: 65534
      group: 42
    - path: /etc/b64
      encoding: b64
      content: aGVsbG8K
    - path: /etc/gz
      encoding: gz+b64
      content: ${gz}
    - path: /etc/named-owner
      content: x
      owner_string: "nobody:shadow"
    directories:
    - path: /var/lib/deep/dir
      permissions: 0750
      owner: 65534
`,
    );
    assert.equal(report.failed, 0, lines.join("\n"));
    assert.equal(read(root, "etc/issue.d/kairos"), "hello\n");
    assert.equal(mode(root, "etc/issue.d/kairos"), 0o640);
    assert.equal(owner(root, "etc/issue.d/kairos"), "65534:42");
    assert.equal(mode(root, "etc/b64"), 0o644, "default file mode");
    assert.equal(read(root, "etc/b64"), "hello\n");
    assert.equal(read(root, "etc/gz"), "zipped\n");
    assert.equal(owner(root, "etc/named-owner"), "65534:42");
    assert.equal(mode(root, "var/lib/deep/dir"), 0o750);
    assert.equal(owner(root, "var/lib/deep/dir"), "65534:65534");
    assert.equal(mode(root, "var/lib/deep"), 0o755, "parents are 0755");
    assert.ok(
      lines.some((l) => /files: created \/etc\/issue\.d\/kairos \(0640, 65534:42, 6 bytes\)/.test(l)),
      lines.join("\n"),
    );
  });

  it("expands the hostname template with the machine id and writes /etc/hostname and /etc/hosts", async () => {
    const root = newRoot();
    writeFileSync(join(root, "etc/hosts"), "127.0.0.1\tlocalhost\n127.0.1.1\told\n");
    const { report } = await stage(
      root,
      "boot",
      'hostname: "kairos-{{ trunc 4 .MachineID }}-{{ .MachineID | trunc 2 | upper }}"\n',
    );
    assert.equal(report.failed, 0);
    assert.equal(read(root, "etc/hostname"), "kairos-4f1c-4F\n");
    assert.equal(read(root, "etc/hosts"), "127.0.0.1\tlocalhost\n127.0.1.1\tkairos-4f1c-4F\n");
  });

  it("fails the hostname step on an unknown template function", async () => {
    const root = newRoot();
    const { report } = await stage(root, "boot", 'hostname: "{{ shuffle .MachineID }}"\n');
    assert.equal(report.failed, 1);
    assert.match(report.steps[0]!.reason!, /unknown template function shuffle/);
  });

  it("enables, disables and masks units by symlinks when systemd is not running", async () => {
    const root = newRoot();
    const { report, lines } = await stage(
      root,
      "network",
      "stages:\n  network:\n  - systemctl:\n      enable: [sshd, getty@tty1]\n      mask: [systemd-resolved]\n      start: [sshd]\n",
    );
    assert.equal(report.failed, 0, lines.join("\n"));
    const etc = join(root, "etc/systemd/system");
    assert.equal(
      readlinkSync(join(etc, "multi-user.target.wants/sshd.service")),
      "/usr/lib/systemd/system/sshd.service",
    );
    assert.equal(readlinkSync(join(etc, "ssh.service")), "/usr/lib/systemd/system/sshd.service");
    assert.equal(
      readlinkSync(join(etc, "getty.target.wants/getty@tty1.service")),
      "/usr/lib/systemd/system/getty@.service",
    );
    assert.equal(readlinkSync(join(etc, "systemd-resolved.service")), "/dev/null");
    assert.ok(lines.some((l) => /start sshd\.service: skipped, systemd is not running/.test(l)));
    const d = await stage(root, "network", "stages:\n  network:\n  - systemctl:\n      disable: [sshd]\n");
    assert.equal(d.report.failed, 0);
    assert.ok(!existsSync(join(etc, "multi-user.target.wants/sshd.service")));
    assert.ok(!lstatExists(join(etc, "ssh.service")));
    assert.ok(lstatExists(join(etc, "systemd-resolved.service")), "disable leaves masks alone");
  });

  it("fails enabling a unit that does not exist", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "boot",
      "stages:\n  boot:\n  - systemctl:\n      enable: [nothere]\n",
    );
    assert.equal(report.failed, 1);
    assert.match(report.steps[0]!.reason!, /unit nothere\.service not found/);
  });

  it("writes environment, resolv.conf and timesyncd.conf", async () => {
    const root = newRoot();
    writeFileSync(join(root, "etc/environment"), "KEEP=1\nHTTP_PROXY=old\n");
    const { report } = await stage(
      root,
      "boot",
      'stages:\n  boot:\n  - environment:\n      HTTP_PROXY: "http://proxy:3128"\n      GREETING: "hello world"\n    dns:\n      nameservers: [1.1.1.1, 9.9.9.9]\n      search: [lan]\n    timesyncd:\n      NTP: 0.pool.ntp.org\n',
    );
    assert.equal(report.failed, 0);
    assert.equal(
      read(root, "etc/environment"),
      'KEEP=1\nHTTP_PROXY=http://proxy:3128\nGREETING="hello world"\n',
    );
    assert.equal(read(root, "etc/resolv.conf"), "nameserver 1.1.1.1\nnameserver 9.9.9.9\nsearch lan\n");
    assert.equal(read(root, "etc/systemd/timesyncd.conf"), "[Time]\nNTP=0.pool.ntp.org\n");
  });
});

describe("run-stage: systemd_firstboot", () => {
  it("runs the real systemd-firstboot against the root", async () => {
    const root = newRoot();
    rmSync(join(root, "etc/hostname"), { force: true });
    const { report, lines } = await stage(
      root,
      "boot",
      "stages:\n  boot:\n  - systemd_firstboot:\n      keymap: us\n      locale: C.UTF-8\n      timezone: UTC\n",
    );
    assert.equal(report.failed, 0, lines.join("\n"));
    assert.equal(read(root, "etc/vconsole.conf"), "KEYMAP=us\n");
    assert.match(read(root, "etc/default/locale"), /LANG=C\.UTF-8/);
    assert.equal(readlinkSync(join(root, "etc/localtime")), "../usr/share/zoneinfo/UTC");
  });
  it("refuses options that prompt or copy from the host", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "boot",
      "stages:\n  boot:\n  - systemd_firstboot:\n      copy_root_password: true\n",
    );
    assert.equal(report.failed, 1);
    assert.match(report.steps[0]!.reason!, /unsupported key "copy_root_password"/);
  });
});

describe("run-stage: downloads and bad roots", () => {
  it("downloads a URL to a path with mode and owner; a path ending in / takes the URL's file name", async () => {
    const root = newRoot();
    const { report, lines } = await stage(
      root,
      "boot",
      `stages:\n  boot:\n  - downloads:\n    - url: ${keysBase}/files/tool.sh\n      path: /usr/local/bin/\n      permissions: 0755\n      owner: 65534\n`,
    );
    assert.equal(report.failed, 0, lines.join("\n"));
    assert.equal(read(root, "usr/local/bin/tool.sh"), "#!/bin/sh\necho tool\n");
    assert.equal(mode(root, "usr/local/bin/tool.sh"), 0o755);
    assert.equal(
      owner(root, "usr/local/bin/tool.sh"),
      "65534:65534",
      "owner without group takes the user's group",
    );
  });
  it("fails a download that answers 404, or a non-http URL, and writes nothing", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "boot",
      `stages:\n  boot:\n  - downloads:\n    - url: ${keysBase}/nope\n      path: /x\n  - downloads:\n    - url: file:///etc/shadow\n      path: /y\n`,
    );
    assert.deepEqual(
      report.steps.map((x) => x.status),
      ["failed", "failed"],
    );
    assert.match(report.steps[0]!.reason!, /HTTP 404/);
    assert.match(report.steps[1]!.reason!, /only http\(s\) URLs/);
    assert.ok(!existsSync(join(root, "x")) && !existsSync(join(root, "y")));
  });
  it("refuses a root that does not exist", async () => {
    await assert.rejects(
      runStage("boot", { root: join(top, "does-not-exist"), config: {} }),
      /is not a usable directory/,
    );
  });
});

function lstatExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

describe("run-stage: order, conditions, isolation, strict", () => {
  it("runs .before, the stage, then .after, steps in order, commands with cwd at the root", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "fs",
      `
stages:
  fs.after:
  - commands: ["echo after >> order"]
  fs:
  - commands: ["echo one >> order", "echo two >> order"]
  - commands: ["echo \\"$KAIROS_ROOT\\" > root-var"]
  fs.before:
  - commands: ["echo before >> order"]
`,
    );
    assert.equal(report.failed, 0);
    assert.equal(read(root, "order"), "before\none\ntwo\nafter\n");
    assert.equal(read(root, "root-var").trim(), report.root);
  });

  it("skips a step whose if exits non-zero and runs it when it exits 0", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "boot",
      'stages:\n  boot:\n  - if: "[ -e etc/nope ]"\n    commands: ["touch ran-nope"]\n  - if: "[ -e etc/passwd ]"\n    commands: ["touch ran-yes"]\n',
    );
    assert.deepEqual(
      report.steps.map((s) => s.status),
      ["skipped", "ok"],
    );
    assert.ok(!existsSync(join(root, "ran-nope")));
    assert.ok(existsSync(join(root, "ran-yes")));
  });

  it("fails (not skips) a step whose if could not run to an exit status", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "boot",
      'stages:\n  boot:\n  - if: "kill -9 $$"\n    commands: ["touch ran"]\n',
    );
    assert.equal(report.steps[0]!.status, "failed");
    assert.match(report.steps[0]!.reason!, /killed by SIGKILL/);
    assert.ok(!existsSync(join(root, "ran")));
  });

  it("filters steps with only_os, only_os_version and only_arch", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "boot",
      'stages:\n  boot:\n  - only_os: ubuntu\n    commands: ["touch a"]\n  - only_os: "deb.*"\n    only_os_version: "^12$"\n    commands: ["touch b"]\n  - only_arch: "nosucharch"\n    commands: ["touch c"]\n',
    );
    assert.deepEqual(
      report.steps.map((s) => s.status),
      ["skipped", "ok", "skipped"],
    );
    assert.ok(existsSync(join(root, "b")) && !existsSync(join(root, "a")) && !existsSync(join(root, "c")));
  });

  it("isolates a failing step: it is logged and the next step runs", async () => {
    const root = newRoot();
    const { report, lines } = await stage(
      root,
      "boot",
      'stages:\n  boot:\n  - name: bad\n    commands: ["echo oops >&2; exit 7"]\n  - name: good\n    commands: ["touch good"]\n',
    );
    assert.deepEqual(
      report.steps.map((s) => s.status),
      ["failed", "ok"],
    );
    assert.equal(report.failed, 1);
    assert.ok(existsSync(join(root, "good")));
    assert.ok(
      lines.some((l) => /boot\[0\] "bad": commands: failed: sh -c .*exited with code 7/.test(l)),
      lines.join("\n"),
    );
    assert.ok(lines.some((l) => /oops/.test(l)));
  });

  it("strict: true makes the first failing step fatal", async () => {
    const root = newRoot();
    await assert.rejects(
      stage(
        root,
        "boot",
        'strict: true\nstages:\n  boot:\n  - commands: ["exit 1"]\n  - commands: ["touch later"]\n',
      ),
      (err: unknown) =>
        err instanceof StageFailedError && /stage boot: step 0 "step 0" failed/.test(err.message),
    );
    assert.ok(!existsSync(join(root, "later")));
  });

  it("runs commands inside a chroot when the root has /bin/sh", async () => {
    const root = newRoot();
    mkdirSync(join(root, "bin"));
    copyFileSync("/bin/busybox", join(root, "bin/sh"));
    copyFileSync("/bin/busybox", join(root, "bin/touch"));
    const { report, lines } = await stage(
      root,
      "boot",
      'stages:\n  boot:\n  - commands: ["touch /in-chroot; echo $KAIROS_ROOT > /kr"]\n',
    );
    assert.equal(report.failed, 0, lines.join("\n"));
    assert.ok(existsSync(join(root, "in-chroot")));
    assert.equal(read(root, "kr").trim(), "/");
    assert.ok(lines.some((l) => /commands run in chroot/.test(l)));
  });
});

describe("run-stage: paths stay inside the root", () => {
  it("refuses to write through a symlink that climbs out of the root", async () => {
    const root = newRoot();
    const outside = mkdtempSync(join(top, "outside-"));
    symlinkSync(`../../../../../../../../..${outside}`, join(root, "escape"));
    const { report } = await stage(
      root,
      "boot",
      "stages:\n  boot:\n  - files:\n    - path: /escape/pwned\n      content: x\n",
    );
    assert.equal(report.failed, 1);
    assert.match(report.steps[0]!.reason!, /points outside/);
    assert.ok(!existsSync(join(outside, "pwned")));
  });

  it("refuses .. in a configured path", async () => {
    const root = newRoot();
    const { report } = await stage(
      root,
      "boot",
      "stages:\n  boot:\n  - directories:\n    - path: /tmp/../../x\n",
    );
    assert.equal(report.failed, 1);
    assert.match(report.steps[0]!.reason!, /contains "\.\."/);
  });

  it("resolves absolute symlinks relative to the root (as the booted system would)", async () => {
    const root = newRoot();
    mkdirSync(join(root, "run/systemd/resolve"), { recursive: true });
    symlinkSync("/run/systemd/resolve/stub-resolv.conf", join(root, "etc/resolv.conf"));
    const { report } = await stage(
      root,
      "boot",
      "stages:\n  boot:\n  - dns:\n      nameservers: [10.0.0.1]\n",
    );
    assert.equal(report.failed, 0);
    assert.equal(read(root, "run/systemd/resolve/stub-resolv.conf"), "nameserver 10.0.0.1\n");
    assert.equal(readlinkSync(join(root, "etc/resolv.conf")), "/run/systemd/resolve/stub-resolv.conf");
  });
});

describe("run-stage: config from the root's directories", () => {
  it("reads /oem and /system/oem under --root for a boot stage", async () => {
    const root = newRoot();
    mkdirSync(join(root, "oem"));
    mkdirSync(join(root, "system/oem"), { recursive: true });
    writeFileSync(
      join(root, "system/oem/00.yaml"),
      '#cloud-config\nstages:\n  boot:\n  - commands: ["echo system >> log"]\n',
    );
    writeFileSync(
      join(root, "oem/90.yaml"),
      '#cloud-config\nstages:\n  boot:\n  - commands: ["echo oem >> log"]\n',
    );
    writeFileSync(join(root, "oem/50.yaml"), "#cloud-config\nstages:\n  boot:\n  - files: yes\n");
    const lines: string[] = [];
    const report = await runStage("boot", { root, log: (l) => lines.push(l), collect: { cmdline: false } });
    assert.equal(read(root, "log"), "system\noem\n");
    assert.equal(report.configErrors.length, 1, "the invalid file is reported and left out");
    assert.ok(
      lines.some((l) => /50\.yaml:4:12: stages\.boot\[0\]\.files: expected a list/.test(l)),
      lines.join("\n"),
    );
    assert.ok(statSync(join(root, "log")).isFile());
  });
});
