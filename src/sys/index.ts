export * from "./errors.js";
export * from "./progress.js";
export * from "./run.js";
export * from "./tools.js";
