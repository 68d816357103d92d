/**
 * Disk images boot straight into the installed system (QEMU TCG, serial markers, bounded
 * timeouts): `kairos build disk` of the default base (init on the fly) with a cloud-config
 * user, as a hybrid raw disk booted with UEFI (OVMF → BOOTX64.EFI on COS_GRUB) and, copied onto
 * a 2 GiB larger virtual disk, with BIOS (SeaBIOS → our boot.img → core.img in the BIOS boot
 * partition), where COS_PERSISTENT must have grown to the end of the disk; and an EFI-only
 * qcow2 built by the builder itself.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, it } from "node:test";
import { boot } from "../helpers/qemu.js";
import { tempDir } from "../helpers/tmp.js";
import { diskFixture } from "./disk-fixture.js";

const UP = /KAIROS-DISK-UP [^\r\n]*/;

function field(line: string, name: string): string {
  return new RegExp(`${name}=(\\S*)`).exec(line)?.[1] ?? "";
}

async function bootDisk(
  workDir: string,
  firmware: "bios" | "uefi",
  drive: string[],
): Promise<{ line: string; log: string; seconds: number }> {
  const vm = await boot({ firmware, workDir, extraArgs: drive });
  try {
    await vm.waitFor(/KAIROS-INITRAMFS: switching root/, 600_000);
    const up = await vm.waitFor(UP, 900_000);
    return { line: up.match, log: vm.log(), seconds: up.seconds };
  } finally {
    await vm.stop();
  }
}

describe("disk images boot under QEMU (TCG)", { timeout: 60 * 60_000 }, () => {
  it("raw hybrid disk, UEFI: active_boot, the cloud-config user, config on COS_OEM, nothing grown", async (t) => {
    const fx = await diskFixture("raw", "hybrid");
    console.log(`raw hybrid disk: ${fx.file} (built in ${fx.buildSeconds.toFixed(0)} s, cached afterwards)`);
    const work = await tempDir(t);
    const r = await bootDisk(work, "uefi", ["-drive", `file=${fx.file},format=raw,if=virtio,snapshot=on`]);
    console.log(`uefi/raw: up after ${r.seconds.toFixed(0)} s: ${r.line}`);
    assert.equal(field(r.line, "boot"), "active_boot", r.line);
    assert.match(field(r.line, "user"), /^\d+$/, r.line);
    assert.match(field(r.line, "oem"), /90_custom\.yaml/, r.line);
    assert.doesNotMatch(r.log, /KAIROS-GROW: COS_PERSISTENT/);
  });

  it("the raw disk copied onto a larger disk, BIOS: boots, COS_PERSISTENT grown to the end", async (t) => {
    const fx = await diskFixture("raw", "hybrid");
    const work = await tempDir(t);
    const big = join(work, "big.raw");
    execFileSync("cp", ["--sparse=always", fx.file, big]);
    execFileSync("truncate", ["-s", "+2G", big]);
    const r = await bootDisk(work, "bios", ["-drive", `file=${big},format=raw,if=virtio`]);
    console.log(`bios/raw on a larger disk: up after ${r.seconds.toFixed(0)} s: ${r.line}`);
    assert.equal(field(r.line, "boot"), "active_boot", r.line);
    const grow = /KAIROS-GROW: COS_PERSISTENT (\d+) -> (\d+) MiB/.exec(r.log);
    assert.ok(grow, "no KAIROS-GROW line on the console");
    assert.ok(Number(grow[2]) - Number(grow[1]) >= 2047, grow[0]);
    // The filesystem the system sees has grown with it (df's size, within ext4's overhead).
    assert.ok(Number(field(r.line, "persistent_mib")) > 2000, r.line);
    // The table on the disk: backup header at the end, partition 6 to the last usable sector.
    const v = execFileSync("sgdisk", ["-v", big], { encoding: "utf8" });
    assert.match(v, /No problems found/, v);
  });

  it("qcow2 (EFI only), built by the builder: boots to active_boot", async (t) => {
    const fx = await diskFixture("qcow2", "efi");
    const info = JSON.parse(
      execFileSync("qemu-img", ["info", "--output=json", fx.file], { encoding: "utf8" }),
    );
    assert.equal(info.format, "qcow2");
    const work = await tempDir(t);
    const r = await bootDisk(work, "uefi", ["-drive", `file=${fx.file},format=qcow2,if=virtio,snapshot=on`]);
    console.log(`uefi/qcow2: up after ${r.seconds.toFixed(0)} s: ${r.line}`);
    assert.equal(field(r.line, "boot"), "active_boot", r.line);
  });
});
