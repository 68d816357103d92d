import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { detectFamily, identityFiles, parseOsRelease } from "../../../src/factory/index.js";
import { KairosError } from "../../../src/sys/index.js";

const DEBIAN =
  'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n';

describe("os-release parsing", () => {
  it("parses quoted, unquoted and escaped values; skips comments", () => {
    const m = parseOsRelease('# c\nA=plain\nB="two words"\nC=\'single $x\'\nD="esc \\" \\$ \\\\"\n\nE=\n');
    assert.deepEqual(Object.fromEntries(m), {
      A: "plain",
      B: "two words",
      C: "single $x",
      D: 'esc " $ \\',
      E: "",
    });
  });
  for (const [text, where] of [
    ["ID=debian\nthis is not valid\n", /os-release:2:1: expected KEY=value/],
    ['ID=debian\nNAME="open\n', /os-release:2:6: unterminated " quote/],
    ["ID=debian\nNAME=two words\n", /os-release:2:9: unquoted space/],
    ["ID=$(reboot)\n", /os-release:1:4: shell character '\$'/],
  ] as const) {
    it(`refuses ${JSON.stringify(text)} with file:line:col`, () => {
      assert.throws(
        () => parseOsRelease(text, "/etc/os-release"),
        (e: Error) => {
          assert.ok(e instanceof KairosError);
          assert.match(e.message, where);
          return true;
        },
      );
    });
  }
  it("detects families from ID and ID_LIKE", () => {
    const fam = (s: string) => detectFamily(parseOsRelease(s));
    assert.equal(fam("ID=debian"), "debian");
    assert.equal(fam("ID=ubuntu\nID_LIKE=debian"), "ubuntu");
    assert.equal(fam('ID=linuxmint\nID_LIKE="ubuntu debian"'), "ubuntu");
    assert.equal(fam('ID="rocky"\nID_LIKE="rhel centos fedora"'), "fedora");
    assert.equal(fam('ID="opensuse-leap"\nID_LIKE="suse opensuse"'), "opensuse");
    assert.equal(fam("ID=alpine"), "alpine");
    assert.equal(fam("ID=plan9"), "unknown");
  });
});

describe("identity", () => {
  it("adds KAIROS_* fields with the seed's option names and defaults", () => {
    const { osRelease, kairosRelease, identity } = identityFiles(DEBIAN, {
      osVersion: "v1.2.3",
      osRepo: "quay.io/me/os",
    });
    const os = parseOsRelease(osRelease);
    assert.equal(os.get("ID"), "debian", "base fields are kept");
    assert.equal(os.get("KAIROS_NAME"), "kairos-core-debian");
    assert.equal(os.get("KAIROS_VERSION"), "v1.2.3");
    assert.equal(os.get("KAIROS_ID"), "kairos");
    assert.equal(os.get("KAIROS_FLAVOR"), "debian");
    assert.equal(os.get("KAIROS_FLAVOR_RELEASE"), "12");
    assert.equal(os.get("KAIROS_VARIANT"), "core");
    assert.equal(os.get("KAIROS_IMAGE_REPO"), "quay.io/me/os");
    assert.equal(os.get("KAIROS_IMAGE_LABEL"), "latest");
    assert.equal(os.get("KAIROS_PRETTY_NAME"), "kairos-core-debian v1.2.3");
    assert.equal(identity.flavor, "debian");
    const kr = parseOsRelease(kairosRelease);
    assert.ok([...kr.keys()].every((k) => k.startsWith("KAIROS_")));
    assert.equal(kr.get("KAIROS_VERSION"), "v1.2.3");
  });

  it("replaces older KAIROS_ lines instead of duplicating them", () => {
    const first = identityFiles(DEBIAN, { osVersion: "v1" }).osRelease;
    const second = identityFiles(`${first}KAIROS_STALE="x"\n`, {
      osVersion: "v2",
      flavor: "mine",
      variant: "standard",
    }).osRelease;
    assert.equal(second.match(/^KAIROS_VERSION=/gm)?.length, 1);
    assert.doesNotMatch(second, /KAIROS_STALE|"v1"/);
    const os = parseOsRelease(second);
    assert.equal(os.get("KAIROS_VERSION"), "v2");
    assert.equal(os.get("KAIROS_FLAVOR"), "mine");
    assert.equal(os.get("KAIROS_NAME"), "kairos-standard-mine");
    assert.ok(second.startsWith('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'));
  });

  it("detects the flavor from ID_LIKE when ID is unusable", () => {
    const { identity } = identityFiles('ID=""\nID_LIKE="rhel fedora"\nNAME=x\n', {});
    assert.equal(identity.flavor, "fedora");
  });

  it("quotes values safely", () => {
    const { osRelease } = identityFiles(DEBIAN, { homeUrl: 'https://x/"$(id)"' });
    assert.equal(parseOsRelease(osRelease).get("KAIROS_HOME_URL"), 'https://x/"$(id)"');
  });

  for (const [opts, msg] of [
    [{ osId: "Kairos OS" }, /OS_ID 'Kairos OS' is not valid/],
    [{ flavor: "../x" }, /FLAVOR '..\/x' is not valid/],
    [{ osVersion: "1\n2" }, /OS_VERSION contains a control character/],
    [{ homeUrl: "a\nKAIROS_ID=evil" }, /HOME_URL contains a control character/],
  ] as const) {
    it(`refuses ${JSON.stringify(opts)}`, () => {
      assert.throws(() => identityFiles(DEBIAN, opts), msg);
    });
  }

  it("refuses a malformed base os-release with its position", () => {
    assert.throws(() => identityFiles("ID=debian\nBROKEN LINE\n", {}), /\/etc\/os-release:2:1/);
  });
});
