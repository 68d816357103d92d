export * from "./cache.js";
export * from "./errors.js";
export * from "./filter.js";
export * from "./progress.js";
export * from "./run.js";
export * from "./tools.js";
