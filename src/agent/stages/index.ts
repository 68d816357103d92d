export * from "./accounts.js";
export * from "./fsops.js";
export * from "./pause.js";
export * from "./runner.js";
export * from "./sha512crypt.js";
export * from "./steps.js";
export * from "./systemd.js";
export * from "./template.js";
