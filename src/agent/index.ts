export * from "./install.js";
export * from "./install-disks.js";
export * from "./install-interactive.js";
export * from "./slots.js";
export * from "./stages/index.js";
export * from "./state.js";
