// One upgrade, as the node's agent runs it (its own process, so that its peak RSS is its own).
import { upgradeSystem } from "../src/agent/index.js";

const [cos, source] = process.argv.slice(2);
await upgradeSystem({ cos: cos!, source: source!, target: "active", open: { insecure: true } });
