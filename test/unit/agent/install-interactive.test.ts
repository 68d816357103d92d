import assert from "node:assert/strict";
import { PassThrough, Readable } from "node:stream";
import { test } from "node:test";
import { parse } from "yaml";
import { type Disk, installDialogue } from "../../../src/agent/index.js";

const DISKS: Disk[] = [
  { device: "/dev/vda", name: "vda", bytes: 32 * 1024 ** 3, readOnly: false },
  { device: "/dev/vdb", name: "vdb", bytes: 64 * 1024 ** 3, readOnly: false },
];

async function dialogue(answers: string[]) {
  const out = new PassThrough();
  let text = "";
  out.on("data", (c: Buffer) => {
    text += c.toString();
  });
  const r = await installDialogue(Readable.from([`${answers.join("\n")}\n`]), out, DISKS);
  return { r, text };
}

test("disk (default: the largest), user, SSH key when no password, confirm: the config to install", async () => {
  const { r, text } = await dialogue([
    "/dev/sdz",
    "",
    "Bad Name",
    "",
    "",
    "nonsense",
    "",
    "ssh-ed25519 AAAA k",
    "y",
  ]);
  assert.match(text, /\/dev\/vda {2}32\.0 GiB/);
  assert.match(text, /Disk to install to \[\/dev\/vdb\]/);
  assert.match(text, /\/dev\/sdz is not one of the disks above/);
  assert.match(text, /use lower-case letters/);
  assert.match(text, /a password or an SSH key is needed/);
  assert.ok(r);
  assert.equal(r.device, "/dev/vdb");
  assert.deepEqual(parse(r.text), {
    install: { device: "/dev/vdb" },
    users: [{ name: "kairos", groups: ["admin"], ssh_authorized_keys: ["ssh-ed25519 AAAA k"] }],
  });
});

test("a password instead of a key; anything but yes installs nothing", async () => {
  const yes = await dialogue(["/dev/vda", "ops", "s3cret", "yes"]);
  assert.deepEqual(yes.r?.config.users, [{ name: "ops", groups: ["admin"], passwd: "s3cret" }]);
  const no = await dialogue(["/dev/vda", "ops", "s3cret", "n"]);
  assert.equal(no.r, undefined);
  assert.match(no.text, /Not installing/);
});

test("input that ends before the dialogue is complete is an error, not an install", async () => {
  await assert.rejects(dialogue(["/dev/vda"]), /input ended before the dialogue was complete/);
});
