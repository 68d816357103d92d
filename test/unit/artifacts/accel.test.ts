import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  chooseAccel,
  machineArgs,
  parseAccel,
  probeKvm,
  requestedAccel,
} from "../../../src/artifacts/index.js";
import { tempDir } from "../../helpers/tmp.js";

const noKernel = async (): Promise<string> => {
  throw new Error("the probe must not run");
};

describe("accelerator choice", () => {
  it("parses auto, kvm and tcg and refuses anything else, naming where it came from", () => {
    assert.equal(parseAccel("KVM", "--accel"), "kvm");
    assert.throws(
      () => parseAccel("hvf", "--accel"),
      /--accel 'hvf': not an accelerator \(auto, kvm or tcg\)/,
    );
    assert.throws(() => requestedAccel(undefined, { KAIROS_ACCEL: "fast" }), /KAIROS_ACCEL 'fast'/);
  });

  it("takes the flag over $KAIROS_ACCEL, and auto when neither is set", () => {
    assert.equal(requestedAccel("tcg", { KAIROS_ACCEL: "kvm" }), "tcg");
    assert.equal(requestedAccel(undefined, { KAIROS_ACCEL: "kvm" }), "kvm");
    assert.equal(requestedAccel(undefined, { KAIROS_ACCEL: "" }), "auto");
    assert.equal(requestedAccel(undefined, {}), "auto");
  });

  it("tcg never probes", async () => {
    assert.deepEqual(await chooseAccel("tcg", { kernel: noKernel }), { accel: "tcg" });
  });

  it("kvm without a usable device is an error with what to do", async () => {
    await assert.rejects(
      chooseAccel("kvm", { kernel: noKernel, device: "/nonexistent/kvm" }),
      (e: Error & { hint?: string }) =>
        /--accel kvm: \/nonexistent\/kvm is missing/.test(e.message) && /--accel tcg/.test(e.hint ?? ""),
    );
  });

  it("auto without a device falls back to TCG with one line and no probe boot", async () => {
    const c = await chooseAccel("auto", { kernel: noKernel, device: "/nonexistent/kvm", cacheDir: false });
    assert.equal(c.accel, "tcg");
    assert.match(c.note ?? "", /^KVM not used: \/nonexistent\/kvm is missing.*software emulation \(TCG/);
    assert.doesNotMatch(c.note ?? "", /\n/);
  });

  it("the probe and the boot share one machine definition", () => {
    assert.deepEqual(machineArgs("kvm", 512).slice(0, 2), ["-accel", "kvm"]);
    assert.ok(machineArgs("tcg", 2048).includes("-nic"));
  });
});

describe("probeKvm without a kernel", () => {
  it("falls back without caching when the kernel cannot be had", async (t) => {
    const dir = await tempDir(t);
    const device = join(dir, "fake-kvm");
    await writeFile(device, "");
    const v = await probeKvm({
      kernel: async () => {
        throw new Error("xorriso: no /boot/kernel on the ISO");
      },
      device,
      cacheDir: join(dir, "cache"),
      bootId: "b",
    });
    assert.equal(v.usable, false);
    assert.match(v.reason, /^no kernel to probe KVM with \(xorriso: no \/boot\/kernel on the ISO\)/);
    assert.ok(!existsSync(join(dir, "cache", "kvm-probe.json")), "not cached");
  });
});
