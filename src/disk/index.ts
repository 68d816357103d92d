export * from "./bios-boot.js";
export * from "./device.js";
export * from "./fsimage.js";
export * from "./gpt.js";
export * from "./image-plan.js";
export * from "./layout.js";
