export * from "./bytes.js";
export { BLOCK, decodeHeader, entryTypeOf, isZeroBlock, parsePax } from "./header.js";
export * from "./pack.js";
export * from "./path.js";
export { PathTrie } from "./path-trie.js";
export { type ReadTarOptions, readTar } from "./reader.js";
export * from "./types.js";
export { encodeHeader, type WriteEntry, writeTar } from "./writer.js";
