import { createHash, hash, randomBytes } from "node:crypto";

/**
 * SHA-512-based crypt(3) (`$6$`), as specified by Ulrich Drepper ("Unix crypt using SHA-256
 * and SHA-512", 2007/2008) and implemented by glibc. Node has no crypt(3), so this is ours.
 */

const ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ROUNDS_DEFAULT = 5000;
const ROUNDS_MIN = 1000;
const ROUNDS_MAX = 999_999_999;
const SALT_MAX = 16;

function sha512(...parts: Buffer[]): Buffer {
  const h = createHash("sha512");
  for (const p of parts) h.update(p);
  return h.digest();
}

/** `len` bytes made of `block` repeated. */
function repeatTo(block: Buffer, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i += block.length) block.copy(out, i, 0, Math.min(block.length, len - i));
  return out;
}

/** The byte order in which the final digest is encoded, three bytes to four characters. */
const ORDER: [number, number, number][] = [
  [0, 21, 42],
  [22, 43, 1],
  [44, 2, 23],
  [3, 24, 45],
  [25, 46, 4],
  [47, 5, 26],
  [6, 27, 48],
  [28, 49, 7],
  [50, 8, 29],
  [9, 30, 51],
  [31, 52, 10],
  [53, 11, 32],
  [12, 33, 54],
  [34, 55, 13],
  [56, 14, 35],
  [15, 36, 57],
  [37, 58, 16],
  [59, 17, 38],
  [18, 39, 60],
  [40, 61, 19],
  [62, 20, 41],
];

function b64(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let s = "";
  for (let i = 0; i < n; i++) {
    s += ALPHABET[w & 0x3f];
    w >>>= 6;
  }
  return s;
}

/** A random 16-character salt from the crypt alphabet. */
export function randomSalt(): string {
  return [...randomBytes(SALT_MAX)].map((b) => ALPHABET[b & 0x3f]).join("");
}

/**
 * Hash `password` with SHA-512 crypt. `salt` may be a bare salt, or a setting string such as
 * `$6$rounds=10000$salt` / a full existing hash (its salt and rounds are reused).
 */
export function sha512crypt(password: string, salt: string = randomSalt(), rounds?: number): string {
  let s = salt;
  let r = rounds;
  let roundsCustom = rounds !== undefined;
  if (s.startsWith("$6$")) s = s.slice(3);
  const m = /^rounds=(\d+)\$/.exec(s);
  if (m) {
    r = Number(m[1]);
    roundsCustom = true;
    s = s.slice(m[0].length);
  }
  s = s.split("$")[0]!.slice(0, SALT_MAX);
  r = Math.min(ROUNDS_MAX, Math.max(ROUNDS_MIN, r ?? ROUNDS_DEFAULT));
  const P = Buffer.from(password, "utf8");
  const S = Buffer.from(s, "utf8");

  const B = sha512(P, S, P);
  const a = createHash("sha512");
  a.update(P);
  a.update(S);
  a.update(repeatTo(B, P.length));
  for (let n = P.length; n > 0; n >>= 1) a.update(n & 1 ? B : P);
  const A = a.digest();

  const dpHash = createHash("sha512");
  for (let i = 0; i < P.length; i++) dpHash.update(P);
  const Pp = repeatTo(dpHash.digest(), P.length);

  const dsHash = createHash("sha512");
  for (let i = 0; i < 16 + A[0]!; i++) dsHash.update(S);
  const Sp = repeatTo(dsHash.digest(), S.length);

  // The rounds loop: one one-shot hash of a reused buffer per round (much cheaper than a Hash object).
  let C = A;
  const buf = Buffer.alloc(64 + Sp.length + 2 * Pp.length);
  for (let i = 0; i < r; i++) {
    let n = 0;
    n += (i & 1 ? Pp : C).copy(buf, n);
    if (i % 3 !== 0) n += Sp.copy(buf, n);
    if (i % 7 !== 0) n += Pp.copy(buf, n);
    n += (i & 1 ? C : Pp).copy(buf, n);
    C = hash("sha512", buf.subarray(0, n), "buffer");
  }

  let out = "";
  for (const [x, y, z] of ORDER) out += b64(C[x]!, C[y]!, C[z]!, 4);
  out += b64(0, 0, C[63]!, 2);
  return `$6$${roundsCustom ? `rounds=${r}$` : ""}${s}$${out}`;
}

/** True for values that are already crypt hashes (written as-is): $1$, $2?$, $5$, $6$, $y$, $gy$, $7$. */
export function isCryptHash(v: string): boolean {
  return /^\$(1|2[abxy]?|5|6|y|gy|7)\$/.test(v);
}

/** Check a password against a `$6$` hash; false for other schemes (we cannot compute them). */
export function verifySha512crypt(password: string, hash: string): boolean {
  if (!hash.startsWith("$6$")) return false;
  const setting = hash.slice(0, hash.lastIndexOf("$"));
  return sha512crypt(password, setting) === hash;
}
