export * from "./debian.js";
