import assert from "node:assert/strict";
import { mkdir, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { cpuFromCpuinfo, nodeUuid, readNodeState, readSystemFacts } from "../../../src/agent/index.js";
import { tempDir } from "../../helpers/tmp.js";

async function put(root: string, path: string, text: string): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), text);
}

/** A node tree with the files upstream's state (kairos-sdk + sysinfo) reads. */
async function nodeTree(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const root = await tempDir(t);
  await put(root, "etc/machine-id", "aaaa1111\n");
  await put(root, "proc/sys/kernel/hostname", "edge-7\n");
  await put(root, "sys/class/dmi/id/product_uuid", "4C4C4544-0042-3510-8052-B4C04F384D32\n");
  await put(root, "sys/class/dmi/id/product_name", "Standard PC (Q35 + ICH9, 2009)\n");
  await put(root, "sys/class/dmi/id/sys_vendor", "QEMU\n");
  await put(
    root,
    "proc/cpuinfo",
    [0, 1]
      .map(
        (i) =>
          `processor\t: ${i}\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R)  Xeon(R)  CPU - E5\nphysical id\t: 0\ncore id\t\t: ${i}\ncache size\t: 16384 KB\n`,
      )
      .join("\n"),
  );
  // A real NIC (its sysfs link points at a PCI device) and a virtual one (skipped, as sysinfo).
  await put(root, "sys/devices/pci0000:00/0000:00:02.0/net/enp0s2/address", "52:54:00:12:34:56\n");
  // As in sysfs: net/NAME/device is the PCI device, whose `driver` links to the driver.
  await mkdir(join(root, "sys/bus/pci/drivers/virtio-pci"), { recursive: true });
  const pci = "sys/devices/pci0000:00/0000:00:02.0";
  await symlink("../../../bus/pci/drivers/virtio-pci", join(root, pci, "driver"));
  await symlink("../../../0000:00:02.0", join(root, pci, "net/enp0s2/device"));
  await mkdir(join(root, "sys/devices/virtual/net/lo"), { recursive: true });
  await mkdir(join(root, "sys/class/net"), { recursive: true });
  await symlink("../../devices/pci0000:00/0000:00:02.0/net/enp0s2", join(root, "sys/class/net/enp0s2"));
  await symlink("../../devices/virtual/net/lo", join(root, "sys/class/net/lo"));
  return root;
}

test("uuid is upstream's: $UUID, else machine id + '-' + hostname; dbus machine id first", async (t) => {
  const root = await nodeTree(t);
  assert.equal(await nodeUuid(root, {}), "aaaa1111-edge-7");
  assert.equal(await nodeUuid(root, { UUID: "from-env" }), "from-env");
  await put(root, "var/lib/dbus/machine-id", "bbbb2222\n");
  assert.equal(await nodeUuid(root, {}), "bbbb2222-edge-7");
  const s = await readNodeState(root, {});
  assert.equal(s.uuid, "bbbb2222-edge-7");
});

test("system facts: node, DMI product (uuid lower-cased), CPU counts, non-virtual NICs", async (t) => {
  const root = await nodeTree(t);
  const f = await readSystemFacts(root);
  assert.deepEqual(f.node, { hostname: "edge-7", machineid: "aaaa1111" });
  assert.deepEqual(f.product, {
    name: "Standard PC (Q35 + ICH9, 2009)",
    vendor: "QEMU",
    uuid: "4c4c4544-0042-3510-8052-b4c04f384d32",
  });
  assert.deepEqual(f.cpu, {
    vendor: "GenuineIntel",
    model: "Intel(R) Xeon(R) CPU -E5",
    cache: 16384,
    cpus: 1,
    cores: 2,
    threads: 2,
  });
  assert.deepEqual(f.network, [{ name: "enp0s2", driver: "virtio-pci", macaddress: "52:54:00:12:34:56" }]);
  const s = await readNodeState(root, {});
  assert.deepEqual(s.system, f);
});

test("an empty root gives empty facts, no error, and a product_uuid that is not a UUID is left out", async (t) => {
  const root = await tempDir(t);
  await put(root, "sys/class/dmi/id/product_uuid", "Not Settable\n");
  const f = await readSystemFacts(root);
  assert.deepEqual(f, { node: {}, product: {}, cpu: {}, network: [] });
  assert.equal(await nodeUuid(root, {}), "-");
  assert.deepEqual(cpuFromCpuinfo(""), {});
});
