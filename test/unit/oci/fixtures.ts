import { copyFile, mkdir, symlink } from "node:fs/promises";
import { join } from "node:path";
import type { BuiltImage } from "../../../src/oci/image.js";
import { appendLayer, emptyImage } from "../../../src/oci/mutate.js";
import { run } from "../../../src/sys/index.js";
import { layerTar } from "../../helpers/layers.js";
import { chunked } from "../../helpers/tmp.js";

/** A small two-layer test image: the second layer deletes etc/a with a whiteout and adds etc/c. */
export async function twoLayerImage(): Promise<BuiltImage> {
  const l1 = await layerTar([
    { path: "etc" },
    { path: "etc/a", content: "alpha\n" },
    { path: "etc/b", content: "bravo\n", mode: 0o600 },
  ]);
  const l2 = await layerTar([
    { path: "etc" },
    { path: "etc/.wh.a", content: "" },
    { path: "etc/c", content: "charlie\n" },
  ]);
  const base = emptyImage({ os: "linux", architecture: "amd64" }, "test-image");
  const one = await appendLayer(base, chunked(l1, 100), { history: { created_by: "layer 1" } });
  return appendLayer(one, chunked(l2, 100), { history: { created_by: "layer 2" } });
}

/**
 * A rootfs the way Yocto or debootstrap leave it: a binary with a file capability and a user.
 * xattr (with a NUL byte, to prove byte-exactness), a dangling symlink carrying a trusted. xattr
 * of its own, a device node and a fifo. The last three make getfattr exit 1 when it follows links.
 */
export async function xattrTree(root: string): Promise<void> {
  await mkdir(join(root, "bin"), { recursive: true });
  await mkdir(join(root, "dev"));
  await mkdir(join(root, "run"));
  await copyFile("/bin/true", join(root, "bin/ping"));
  await run("setcap", ["cap_net_raw+ep", join(root, "bin/ping")]);
  await run("setfattr", ["-n", "user.kairos", "-v", "0x68656c6c6f00776f726c64", join(root, "bin/ping")]);
  await symlink("/nonexistent/target", join(root, "bin/dangling"));
  await run("setfattr", ["-h", "-n", "trusted.kairos", "-v", "0x01ff", join(root, "bin/dangling")]);
  await run("mknod", [join(root, "dev/null"), "c", "1", "3"]);
  await run("mkfifo", [join(root, "run/fifo")]);
}

/** security.capability for cap_net_raw+ep (VFS_CAP_REVISION_2), as setcap writes it. */
export const NET_RAW_CAP = "0100000200200000000000000000000000000000";
