import { createHash, getFips, setFips } from "node:crypto";
import { KairosError } from "../sys/index.js";

/**
 * FIPS flavor of the agent: switch Node's OpenSSL to FIPS mode with the operating system's
 * FIPS provider, or refuse to run. The base must provide an OpenSSL 3 FIPS provider module
 * (fips.so) and an openssl.cnf that activates it; the agent wrapper points OPENSSL_CONF and
 * OPENSSL_MODULES at them (see docs/factory.md).
 */
export function enforceFips(): void {
  try {
    if (getFips() !== 1) setFips(true);
  } catch (err) {
    throw new KairosError(
      `this is the FIPS build of kairos-agent and no FIPS-validated OpenSSL provider could be enabled (${(err as Error).message.split("\n")[0]})`,
      "the OS must provide an OpenSSL 3 FIPS provider (ossl-modules/fips.so) and an openssl.cnf that activates it; set OPENSSL_CONF and OPENSSL_MODULES (docs/factory.md)",
    );
  }
  // OpenSSL 3 accepts "FIPS mode" without any FIPS provider and then fails every fetch: prove
  // that an approved algorithm really comes from a loaded provider.
  try {
    createHash("sha256").update("kairos").digest();
  } catch (err) {
    throw new KairosError(
      `this is the FIPS build of kairos-agent and no FIPS-validated OpenSSL provider is loaded (${(err as Error).message.split("\n")[0]})`,
      "the OS must provide an OpenSSL 3 FIPS provider (ossl-modules/fips.so) and an openssl.cnf that activates it; set OPENSSL_CONF and OPENSSL_MODULES (docs/factory.md)",
    );
  }
  if (getFips() !== 1) {
    throw new KairosError(
      "this is the FIPS build of kairos-agent and OpenSSL did not enter FIPS mode",
      "check the OS's FIPS provider configuration (docs/factory.md)",
    );
  }
}
