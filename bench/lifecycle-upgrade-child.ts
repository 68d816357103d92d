// One upgrade, as the node's agent runs it (its own process, so that its peak RSS is its own).
import { upgradeSystem } from "../src/agent/index.js";

const [cos, source] = process.argv.slice(2);
// A function, not top-level await: the bench bundles this as CommonJS, as the agent is.
async function main(): Promise<void> {
  await upgradeSystem({ cos: cos!, source: source!, target: "active", open: { insecure: true } });
}
void main().catch((err) => {
  console.error(err);
  process.exit(1);
});
