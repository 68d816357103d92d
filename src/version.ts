/** The kairos-ts version, shown by `kairos version` and `kairos-agent version`. */
export const VERSION = "0.1.0";
