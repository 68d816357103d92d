export * from "./stages/index.js";
export * from "./state.js";
