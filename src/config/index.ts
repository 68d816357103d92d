export * from "./cmdline.js";
export * from "./errors.js";
export * from "./merge.js";
export * from "./parse.js";
export * from "./rootpath.js";
export * from "./schema.js";
export * from "./sources.js";
export * from "./validate.js";
