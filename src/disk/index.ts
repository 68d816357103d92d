export * from "./device.js";
export * from "./layout.js";
