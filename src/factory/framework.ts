import { createReadStream } from "node:fs";
import { readdir, readFile, realpath, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { KairosError, requireTool, run } from "../sys/index.js";
import type { TarHeader } from "../tar/types.js";
import type { WriteEntry } from "../tar/writer.js";
import { frameworkDir, repoDir } from "./paths.js";
import { components } from "./rootfs-view.js";

/** The systemd units of the framework and the targets `systemctl enable` links them into. */
export const FRAMEWORK_UNITS: Readonly<Record<string, string>> = {
  "cos-setup-fs.service": "sysinit.target",
  "cos-setup-boot.service": "multi-user.target",
  "cos-setup-network.service": "multi-user.target",
  "cos-setup-reconcile.service": "multi-user.target",
  "cos-setup-reconcile.timer": "timers.target",
  "kairos-installer.service": "multi-user.target",
  "kairos-boot-assessment.service": "multi-user.target",
  "kairos-reset.service": "multi-user.target",
  "kairos-interactive.service": "multi-user.target",
  "kairos-grow-persistent.service": "sysinit.target",
};

/** Units `kairos init` enables, as the seed's Dockerfile does (the reconcile service runs from its timer). */
export const ENABLED_UNITS = [
  "cos-setup-fs.service",
  "cos-setup-boot.service",
  "cos-setup-network.service",
  "cos-setup-reconcile.timer",
  "kairos-installer.service",
  "kairos-boot-assessment.service",
  "kairos-reset.service",
  "kairos-interactive.service",
  "kairos-grow-persistent.service",
] as const;

/** One file of the framework, as it lands in the image. */
export interface FrameworkFile {
  /** Absolute path in the image. */
  path: string;
  type: "file" | "symlink";
  mode: number;
  /** Contents in memory, or a host file streamed at write time (the 100 MB agent). */
  content?: Buffer;
  hostPath?: string;
  size: number;
  linkname?: string;
}

export interface FrameworkOptions {
  /** Host path of the kairos-agent single executable (default: built by scripts/build-agent). */
  agent?: string;
  /** Host path of tar2sqfs to carry for upgrades on the node (default: the one on PATH). */
  tar2sqfs?: string;
  /** The FIPS flavor: the agent runs with the OS's FIPS provider, through a wrapper. */
  fips?: boolean;
}

/** The agent executable for the flavor: $KAIROS_AGENT_BINARY, or built (and cached) by scripts/build-agent. */
export async function ensureAgent(fips = false): Promise<string> {
  const env = fips ? process.env.KAIROS_AGENT_FIPS_BINARY : process.env.KAIROS_AGENT_BINARY;
  if (env) return env;
  const { stdout } = await run(join(repoDir(), "scripts", "build-agent"), fips ? ["--fips"] : []);
  return stdout.trim().split("\n").pop()!;
}

/** Wrapper that points Node's OpenSSL at the OS's configuration and FIPS provider. */
export const FIPS_WRAPPER = `#!/bin/sh
# kairos-agent, FIPS flavor (kairos-ts): run the agent with the operating system's OpenSSL
# configuration and FIPS provider. The agent itself refuses to start unless OpenSSL is in FIPS
# mode with a loaded FIPS provider (docs/factory.md).
if [ -z "$OPENSSL_MODULES" ]; then
	for d in /usr/lib64/ossl-modules /usr/lib/x86_64-linux-gnu/ossl-modules /usr/lib/ossl-modules; do
		if [ -e "$d/fips.so" ]; then OPENSSL_MODULES=$d; export OPENSSL_MODULES; break; fi
	done
fi
if [ -z "$OPENSSL_CONF" ]; then
	for f in /etc/pki/tls/openssl.cnf /etc/ssl/openssl.cnf; do
		if [ -e "$f" ]; then OPENSSL_CONF=$f; export OPENSSL_CONF; break; fi
	done
fi
NODE_OPTIONS="--openssl-shared-config\${NODE_OPTIONS:+ $NODE_OPTIONS}"
export NODE_OPTIONS
exec /usr/lib/kairos/kairos-agent "$@"
`;

async function mem(path: string, hostFile: string, mode: number): Promise<FrameworkFile> {
  const content = await readFile(hostFile);
  return { path, type: "file", mode, content, size: content.length };
}

async function dirFiles(hostDir: string): Promise<string[]> {
  return (await readdir(hostDir)).sort();
}

/** Every file the framework puts into an image (what `COPY --from=<framework> / /` copies). */
export async function frameworkFiles(opts: FrameworkOptions = {}): Promise<FrameworkFile[]> {
  const fw = frameworkDir();
  const agent = opts.agent ?? (await ensureAgent(opts.fips));
  const st = await stat(agent).catch(() => undefined);
  if (!st?.isFile())
    throw new KairosError(`kairos-agent executable ${agent} not found`, "run scripts/build-agent");
  const files: FrameworkFile[] = [];
  if (opts.fips) {
    files.push({
      path: "/usr/lib/kairos/kairos-agent",
      type: "file",
      mode: 0o755,
      hostPath: agent,
      size: st.size,
    });
    const w = Buffer.from(FIPS_WRAPPER);
    files.push({ path: "/usr/bin/kairos-agent", type: "file", mode: 0o755, content: w, size: w.length });
  } else {
    files.push({ path: "/usr/bin/kairos-agent", type: "file", mode: 0o755, hostPath: agent, size: st.size });
  }
  for (const unit of Object.keys(FRAMEWORK_UNITS)) {
    files.push(await mem(`/etc/systemd/system/${unit}`, join(fw, "systemd", unit), 0o644));
  }
  files.push(await mem("/usr/lib/kairos/early-boot.sh", join(fw, "boot", "kairos-early-boot.sh"), 0o755));
  files.push(
    await mem("/usr/lib/kairos/grow-persistent.sh", join(fw, "disk", "kairos-grow-persistent.sh"), 0o755),
  );
  for (const f of await dirFiles(join(fw, "dracut", "30kairos"))) {
    files.push(
      await mem(`/usr/lib/dracut/modules.d/30kairos/${f}`, join(fw, "dracut", "30kairos", f), 0o755),
    );
  }
  files.push(
    await mem(
      "/usr/lib/dracut/modules.d/30kairos/kairos-early-boot.sh",
      join(fw, "boot", "kairos-early-boot.sh"),
      0o755,
    ),
  );
  files.push(
    await mem("/etc/dracut.conf.d/10-kairos.conf", join(fw, "dracut", "conf", "10-kairos.conf"), 0o644),
  );
  files.push(await mem("/etc/cos/grub.cfg", join(fw, "grub", "grub.cfg"), 0o644));
  for (const f of await dirFiles(join(fw, "system", "oem"))) {
    files.push(await mem(`/system/oem/${f}`, join(fw, "system", "oem", f), 0o644));
  }
  files.push(...(await packerFiles(opts.tar2sqfs)));
  return files;
}

/**
 * tar2sqfs and the shared libraries it needs (except the C library), from the build host, for
 * `kairos-agent upgrade` on the node: distributions ship squashfs-tools (mksquashfs, which needs
 * the tree unpacked first) rather than squashfs-tools-ng. ~1.5 MB; needs glibc >= 2.34 on the
 * node (docs/lifecycle.md explains the choice). A wrapper in /usr/lib/kairos/bin sets the
 * library path.
 */
export async function packerFiles(tar2sqfs?: string): Promise<FrameworkFile[]> {
  tar2sqfs ??= requireTool("tar2sqfs");
  const { stdout } = await run("ldd", [tar2sqfs]);
  const libs: string[] = [];
  for (const line of stdout.split("\n")) {
    // "libzstd.so.1 => /lib/x86_64-linux-gnu/libzstd.so.1 (0x…)"; the C library and the loader stay the node's.
    const m = /^\s*(\S+)\s+=>\s+(\/\S+)/.exec(line);
    if (!m || /^(libc|libm|libpthread|libdl|ld-linux[^.]*)\.so/.test(m[1]!)) continue;
    libs.push(m[2]!);
  }
  const out: FrameworkFile[] = [];
  const host = async (path: string, hostPath: string, mode: number): Promise<FrameworkFile> => {
    const real = await realpath(hostPath);
    return { path, type: "file", mode, hostPath: real, size: (await stat(real)).size };
  };
  out.push(await host("/usr/lib/kairos/lib/tar2sqfs", tar2sqfs, 0o755));
  for (const lib of libs) out.push(await host(`/usr/lib/kairos/lib/${basename(lib)}`, lib, 0o644));
  out.push(await mem("/usr/lib/kairos/bin/tar2sqfs", join(frameworkDir(), "bin", "tar2sqfs"), 0o755));
  return out;
}

/** The `systemctl enable` symlinks for ENABLED_UNITS. */
export function enableLinks(): FrameworkFile[] {
  return ENABLED_UNITS.map((u) => ({
    path: `/etc/systemd/system/${FRAMEWORK_UNITS[u]}.wants/${u}`,
    type: "symlink" as const,
    mode: 0o777,
    size: 0,
    linkname: `/etc/systemd/system/${u}`,
  }));
}

const mtime = () => {
  const sde = Number.parseInt(process.env.SOURCE_DATE_EPOCH ?? "", 10);
  return Number.isFinite(sde) ? sde : 0;
};

/**
 * Tar entries for files: parent directories first (only those `dirExists` says are missing,
 * so a layer never changes the base's directory metadata), then the files.
 */
export async function* layerEntries(
  files: FrameworkFile[],
  dirExists: (path: string) => Promise<boolean> = async () => false,
  extra: WriteEntry[] = [],
): AsyncGenerator<WriteEntry> {
  const t = mtime();
  const dirs = new Set<string>();
  for (const f of files) {
    const parts = components(f.path);
    for (let i = 1; i < parts.length; i++) dirs.add(`/${parts.slice(0, i).join("/")}`);
  }
  for (const d of [...dirs].sort()) {
    if (await dirExists(d)) continue;
    yield { header: { path: d.slice(1), type: "directory", mode: 0o755, uid: 0, gid: 0, size: 0, mtime: t } };
  }
  for (const f of files) {
    const header: TarHeader = {
      path: f.path.slice(1),
      type: f.type,
      mode: f.mode,
      uid: 0,
      gid: 0,
      size: 0,
      mtime: t,
    };
    if (f.type === "symlink") {
      header.linkname = f.linkname!;
      yield { header };
    } else {
      header.size = f.size;
      yield {
        header,
        body:
          f.content ?? (createReadStream(f.hostPath!, { highWaterMark: 1 << 20 }) as AsyncIterable<Buffer>),
      };
    }
  }
  yield* extra;
}
