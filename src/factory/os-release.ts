import { KairosError } from "../sys/index.js";

/** One KEY=value assignment of an os-release file, with where it was. */
export interface OsReleaseLine {
  key: string;
  value: string;
  line: number;
}

/** A problem in an os-release file, with its position (1-based line and column). */
export class OsReleaseSyntaxError extends KairosError {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly col: number,
    reason: string,
  ) {
    super(
      `${file}:${line}:${col}: ${reason}`,
      "os-release lines are KEY=value, KEY=\"value\" or KEY='value' (see os-release(5))",
    );
  }
}

/**
 * Parse an os-release(5) file: shell-style assignments, one per line, `#` comments.
 * Throws OsReleaseSyntaxError naming file:line:col for anything else.
 */
export function parseOsRelease(text: string, file = "/etc/os-release"): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of parseOsReleaseLines(text, file)) out.set(a.key, a.value);
  return out;
}

export function parseOsReleaseLines(text: string, file = "/etc/os-release"): OsReleaseLine[] {
  const out: OsReleaseLine[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.replace(/\r$/, "");
    const lineNo = i + 1;
    const trimmed = raw.trimStart();
    const indent = raw.length - trimmed.length;
    if (trimmed === "" || trimmed.startsWith("#")) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(trimmed);
    if (!m) {
      throw new OsReleaseSyntaxError(file, lineNo, indent + 1, `expected KEY=value, found '${trimmed}'`);
    }
    const key = m[1]!;
    let pos = m[0].length;
    let value = "";
    while (pos < trimmed.length) {
      const ch = trimmed[pos]!;
      if (ch === '"' || ch === "'") {
        const quote = ch;
        const startCol = indent + pos + 1;
        pos++;
        let closed = false;
        while (pos < trimmed.length) {
          const c = trimmed[pos]!;
          if (c === quote) {
            closed = true;
            pos++;
            break;
          }
          if (quote === '"' && c === "\\" && pos + 1 < trimmed.length) {
            const next = trimmed[pos + 1]!;
            value += '$"\\`'.includes(next) ? next : `\\${next}`;
            pos += 2;
            continue;
          }
          value += c;
          pos++;
        }
        if (!closed) throw new OsReleaseSyntaxError(file, lineNo, startCol, `unterminated ${quote} quote`);
      } else if (ch === "\\" && pos + 1 < trimmed.length) {
        value += trimmed[pos + 1];
        pos += 2;
      } else if (/\s/.test(ch)) {
        const rest = trimmed.slice(pos).trim();
        if (rest === "" || rest.startsWith("#")) break;
        throw new OsReleaseSyntaxError(
          file,
          lineNo,
          indent + pos + 1,
          `unquoted space in the value of ${key} (quote the value)`,
        );
      } else if ("`$;|&<>()".includes(ch)) {
        throw new OsReleaseSyntaxError(
          file,
          lineNo,
          indent + pos + 1,
          `shell character '${ch}' in the value of ${key} (quote the value)`,
        );
      } else {
        value += ch;
        pos++;
      }
    }
    out.push({ key, value, line: lineNo });
  }
  return out;
}

/** Quote a value for os-release: always double quotes, escaping what needs it. */
export function quoteOsReleaseValue(value: string): string {
  return `"${value.replace(/[\\"`$]/g, (c) => `\\${c}`)}"`;
}

/** The distribution families the factory knows the package names of. */
export type Family = "debian" | "ubuntu" | "fedora" | "opensuse" | "alpine" | "unknown";

/** Family from ID and ID_LIKE (Ubuntu is told apart from Debian; RHEL-likes are "fedora"). */
export function detectFamily(osRelease: Map<string, string>): Family {
  const ids = [osRelease.get("ID") ?? "", ...(osRelease.get("ID_LIKE") ?? "").split(/\s+/)]
    .map((s) => s.toLowerCase())
    .filter(Boolean);
  for (const id of ids) {
    if (id === "ubuntu") return "ubuntu";
    if (id === "debian") return "debian";
    if (["fedora", "rhel", "centos", "rocky", "almalinux", "ol", "amzn"].includes(id)) return "fedora";
    if (id.startsWith("opensuse") || id === "suse" || id === "sles" || id === "sle-micro") return "opensuse";
    if (id === "alpine") return "alpine";
  }
  return "unknown";
}
