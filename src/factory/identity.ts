import { KairosError } from "../sys/index.js";
import { detectFamily, parseOsRelease, parseOsReleaseLines, quoteOsReleaseValue } from "./os-release.js";

/** The identity options of the seed's Dockerfile (OS_NAME, OS_VERSION, …). */
export interface IdentityOptions {
  /** OS_NAME; default `kairos-<variant>-<flavor>`. */
  osName?: string;
  /** OS_VERSION; default "v0.0.0". */
  osVersion?: string;
  /** OS_ID; default "kairos". */
  osId?: string;
  /** OS_LABEL (image tag); default "latest". */
  osLabel?: string;
  /** OS_REPO (image repository); default "". */
  osRepo?: string;
  /** HOME_URL; default "". */
  homeUrl?: string;
  /** VARIANT; default "core". */
  variant?: string;
  /** FLAVOR; default: detected from the base's ID/ID_LIKE. */
  flavor?: string;
  /** Marks a FIPS build (KAIROS_FIPS="true"). */
  fips?: boolean;
}

/** The values after defaults are applied, as the KAIROS_* fields they become. */
export interface Identity {
  fields: [string, string][];
  flavor: string;
}

const ID_RE = /^[a-z0-9][a-z0-9._-]*$/;

function check(name: string, value: string, re?: RegExp): string {
  if (/[\x00-\x1f\x7f]/.test(value)) {
    throw new KairosError(
      `${name} contains a control character or newline`,
      `give ${name} as one plain line`,
    );
  }
  if (re && !re.test(value)) {
    throw new KairosError(
      `${name} '${value}' is not valid: use lowercase letters, digits, '.', '_' and '-'`,
      `for example --${name.toLowerCase().replace(/_/g, "-")} kairos`,
    );
  }
  return value;
}

/** Flavor from the base's os-release: its ID, or the first ID_LIKE when ID is empty. */
export function detectFlavor(osRelease: Map<string, string>): string {
  const id = (osRelease.get("ID") ?? "").toLowerCase();
  if (id && ID_RE.test(id)) return id;
  const family = detectFamily(osRelease);
  return family === "unknown" ? "linux" : family;
}

/** Apply defaults and validate; `baseOsRelease` is the parsed os-release of the base image. */
export function resolveIdentity(opts: IdentityOptions, baseOsRelease: Map<string, string>): Identity {
  const flavor = check("FLAVOR", opts.flavor ?? detectFlavor(baseOsRelease), ID_RE);
  const variant = check("VARIANT", opts.variant ?? "core", ID_RE);
  const osId = check("OS_ID", opts.osId ?? "kairos", ID_RE);
  const osName = check("OS_NAME", opts.osName ?? `kairos-${variant}-${flavor}`, ID_RE);
  const osVersion = check("OS_VERSION", opts.osVersion ?? "v0.0.0", /^[A-Za-z0-9][A-Za-z0-9._+~-]*$/);
  const osLabel = check("OS_LABEL", opts.osLabel ?? "latest", /^[A-Za-z0-9_][A-Za-z0-9._-]*$/);
  const osRepo = check("OS_REPO", opts.osRepo ?? "");
  const homeUrl = check("HOME_URL", opts.homeUrl ?? "");
  const family = detectFamily(baseOsRelease);
  const fields: [string, string][] = [
    ["KAIROS_NAME", osName],
    ["KAIROS_VERSION", osVersion],
    ["KAIROS_ID", osId],
    ["KAIROS_ID_LIKE", osName],
    ["KAIROS_VERSION_ID", osVersion],
    ["KAIROS_PRETTY_NAME", `${osName} ${osVersion}`],
    ["KAIROS_HOME_URL", homeUrl],
    ["KAIROS_IMAGE_REPO", osRepo],
    ["KAIROS_IMAGE_LABEL", osLabel],
    ["KAIROS_VARIANT", variant],
    ["KAIROS_FLAVOR", flavor],
    ["KAIROS_FLAVOR_RELEASE", baseOsRelease.get("VERSION_ID") ?? ""],
    ["KAIROS_FAMILY", family],
    ["KAIROS_RELEASE", osVersion],
    ["KAIROS_ARCH", "amd64"],
    ["KAIROS_MODEL", "generic"],
    ["KAIROS_FIPS", opts.fips ? "true" : "false"],
  ];
  return { fields, flavor };
}

/**
 * The new /etc/os-release: the base's lines with every older KAIROS_* assignment removed,
 * then the KAIROS_* fields. Throws OsReleaseSyntaxError (file:line:col) on a malformed base.
 */
export function renderOsRelease(baseText: string, identity: Identity, file = "/etc/os-release"): string {
  parseOsReleaseLines(baseText, file); // validates, with positions
  const kept = baseText
    .replace(/\r/g, "")
    .split("\n")
    .filter((l) => !/^\s*KAIROS_[A-Za-z0-9_]*=/.test(l));
  while (kept.length > 0 && kept[kept.length - 1] === "") kept.pop();
  const added = identity.fields.map(([k, v]) => `${k}=${quoteOsReleaseValue(v)}`);
  return `${[...kept, ...added].join("\n")}\n`;
}

/** /etc/kairos-release: the KAIROS_* fields alone. */
export function renderKairosRelease(identity: Identity): string {
  return `${identity.fields.map(([k, v]) => `${k}=${quoteOsReleaseValue(v)}`).join("\n")}\n`;
}

/** Both identity files for a base whose os-release text is given. */
export function identityFiles(
  baseOsReleaseText: string,
  opts: IdentityOptions,
  file = "/etc/os-release",
): { osRelease: string; kairosRelease: string; identity: Identity } {
  const base = parseOsRelease(baseOsReleaseText, file);
  const identity = resolveIdentity(opts, base);
  return {
    osRelease: renderOsRelease(baseOsReleaseText, identity, file),
    kairosRelease: renderKairosRelease(identity),
    identity,
  };
}
