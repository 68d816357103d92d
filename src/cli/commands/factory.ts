import type { Command } from "commander";
import {
  DirectoryView,
  type DoctorReport,
  doctor,
  doctorImage,
  exportFramework,
  formatReport,
  type IdentityOptions,
  kairosInit,
} from "../../factory/index.js";
import { formatBytes, KairosError } from "../../sys/index.js";
import { action, type GlobalOptions, globals, output, progressFor, type Register } from "../common.js";

/** The identity options (--os-name …, --fips) plus what only the CLI has. */
interface InitCliOptions extends GlobalOptions, IdentityOptions {
  output?: string;
  agent?: string;
  modules?: string;
  compression?: "zstd" | "gzip";
}

function interruptSignal(): AbortSignal {
  const ac = new AbortController();
  process.once("SIGINT", () => ac.abort(new KairosError("interrupted")));
  return ac.signal;
}

/** `kairos doctor`, `kairos init`, `kairos framework export`. */
export const registerFactory: Register = (program: Command) => {
  program
    .command("doctor")
    .description("check that an image meets the Kairos contract (kernel, init, tools, glibc, os-release)")
    .argument(
      "<image>",
      "image reference (docker://, oci:, oci-archive:, docker-archive:, docker-daemon:, dir:) or a rootfs directory",
    )
    .addHelpText("after", "\nExit status: 0 when every hard requirement is met, 1 otherwise.")
    .action(
      action(async (image: string, _o: GlobalOptions, cmd: Command) => {
        const g = globals(cmd);
        let report: DoctorReport;
        if (image.startsWith("/") || image.startsWith("./")) {
          report = await doctor(new DirectoryView(image));
        } else {
          report = await doctorImage(image, progressFor(g));
        }
        output(g, report, () => formatReport(report, image));
        return report.ok ? 0 : 1;
      }),
    );

  program
    .command("init")
    .description("turn a base image into a Kairos image: base layers untouched plus one framework layer")
    .argument("<base>", "base image reference (any transport)")
    .requiredOption(
      "-o, --output <ref>",
      "destination image reference (any transport, e.g. oci-archive:kairos.tar)",
    )
    .option("--os-name <name>", "OS_NAME (default kairos-<variant>-<flavor>)")
    .option("--os-version <version>", "OS_VERSION", "v0.0.0")
    .option("--os-id <id>", "OS_ID", "kairos")
    .option("--os-label <label>", "OS_LABEL (image tag)", "latest")
    .option("--os-repo <repo>", "OS_REPO (image repository)", "")
    .option("--home-url <url>", "HOME_URL", "")
    .option("--variant <variant>", "VARIANT", "core")
    .option("--flavor <flavor>", "FLAVOR (default: from the base's os-release ID/ID_LIKE)")
    .option("--fips", "FIPS flavor of the framework (the agent needs the OS's FIPS OpenSSL provider)")
    .option(
      "--agent <file>",
      "kairos-agent executable to use (default: built by scripts/build-agent, cached)",
    )
    .option("--modules <list>", "comma-separated kernel modules for the initramfs instead of the default set")
    .option("--compression <zstd|gzip>", "initramfs compression", "zstd")
    .action(
      action(async (base: string, o: InitCliOptions, cmd: Command) => {
        const g = globals(cmd);
        if (o.compression !== "zstd" && o.compression !== "gzip") {
          throw new KairosError(`unknown --compression '${o.compression}'`, "use zstd or gzip");
        }
        const r = await kairosInit(base, o.output!, {
          osName: o.osName,
          osVersion: o.osVersion,
          osId: o.osId,
          osLabel: o.osLabel,
          osRepo: o.osRepo,
          homeUrl: o.homeUrl,
          variant: o.variant,
          flavor: o.flavor,
          fips: o.fips,
          agent: o.agent,
          modules: o.modules
            ?.split(",")
            .map((s) => s.trim())
            .filter(Boolean),
          compression: o.compression,
          progress: progressFor(g),
          signal: interruptSignal(),
        });
        output(g, { output: o.output, ...r }, () =>
          [
            `wrote ${o.output} (${r.digest})`,
            `initramfs: ${formatBytes(r.initramfs.bytes)} ${r.initramfs.compression}, kernel ${r.initramfs.kernelVersion}, ${r.initramfs.modules.length} modules`,
            `framework layer: ${r.layerFiles.length} files`,
          ].join("\n"),
        );
      }),
    );

  const fw = program
    .command("framework")
    .description("the Kairos framework (agent, units, boot scripts) as files and images");
  fw.command("export")
    .description(
      "write the framework as a one-layer image, for `COPY --from=<framework> / /` in a Dockerfile",
    )
    .argument(
      "<dest>",
      "destination image reference (e.g. oci-archive:framework.tar, oci:DIR:TAG, docker://…)",
    )
    .option("--fips", "FIPS flavor")
    .option(
      "--agent <file>",
      "kairos-agent executable to use (default: built by scripts/build-agent, cached)",
    )
    .action(
      action(async (dest: string, o: { fips?: boolean; agent?: string }, cmd: Command) => {
        const g = globals(cmd);
        const r = await exportFramework(dest, {
          fips: o.fips,
          agent: o.agent,
          progress: progressFor(g),
          signal: interruptSignal(),
        });
        output(
          g,
          { dest, ...r },
          () =>
            `wrote ${dest} (${r.digest}): ${r.files.length} files\n${r.files.map((f) => `  ${f}`).join("\n")}`,
        );
      }),
    );
};
