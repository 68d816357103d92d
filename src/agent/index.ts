export * from "./durable.js";
export * from "./grubenv.js";
export * from "./slots.js";
export * from "./stages/index.js";
export * from "./state.js";
export * from "./upgrade.js";
export * from "./upgrade-source.js";
