export * from "./durable.js";
export * from "./grubenv.js";
export * from "./stages/index.js";
export * from "./state.js";
