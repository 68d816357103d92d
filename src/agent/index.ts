export * from "./stages/index.js";
