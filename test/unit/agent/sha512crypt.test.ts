import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, it } from "node:test";
import { isCryptHash, randomSalt, sha512crypt, verifySha512crypt } from "../../../src/agent/index.js";

describe("SHA-512 crypt", () => {
  it("matches the published test vectors (Drepper's specification)", () => {
    assert.equal(
      sha512crypt("Hello world!", "saltstring"),
      "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
    );
    assert.equal(
      sha512crypt("Hello world!", "$6$rounds=10000$saltstringsaltstring"),
      "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.",
    );
  });
  it("agrees with `openssl passwd -6` for assorted passwords and salts", () => {
    const cases: [string, string][] = [
      ["kairos", "abcdefgh"],
      ["x", "x"],
      ["pässwörd with spaces", "0123456789abcdef"],
      ["a".repeat(100), "./AZaz09"],
      ["p", randomSalt()],
    ];
    for (const [pw, salt] of cases) {
      const want = execFileSync("openssl", ["passwd", "-6", "-salt", salt, pw], { encoding: "utf8" }).trim();
      assert.equal(sha512crypt(pw, salt), want, `password ${JSON.stringify(pw)} salt ${salt}`);
    }
  });
  it("clamps rounds to at least 1000 as glibc does", () => {
    assert.equal(sha512crypt("x", "$6$rounds=10$salt").split("$")[2], "rounds=1000");
  });
  it("verifies a password against its hash and rejects a wrong one", () => {
    const h = sha512crypt("secret");
    assert.ok(verifySha512crypt("secret", h));
    assert.ok(!verifySha512crypt("Secret", h));
    assert.ok(!verifySha512crypt("secret", "$5$abc$def"));
  });
  it("recognises existing crypt hashes", () => {
    for (const h of ["$1$a$b", "$5$a$b", "$6$a$b", "$y$j9T$a$b", "$2b$10$x"]) assert.ok(isCryptHash(h), h);
    for (const p of ["kairos", "$notahash", "6$a$b"]) assert.ok(!isCryptHash(p), p);
  });
});
