// Runs one upgrade into a slot directory and kills itself (SIGKILL, no cleanup of any kind) at
// the step boundary named by argv[5]: the crash half of the power-cut tests. Usage:
//   node --import tsx upgrade-child.ts COS_DIR SOURCE GRUBENV STEP
import { upgradeSystem } from "../../src/agent/index.js";

const [cos, source, grubenv, crashAt] = process.argv.slice(2);
await upgradeSystem({
  cos: cos!,
  source: source!,
  target: "active",
  grubenv: grubenv!,
  onStep: (step) => {
    process.stdout.write(`step ${step}\n`);
    if (step === crashAt) process.kill(process.pid, "SIGKILL");
  },
});
process.stdout.write("Upgrade completed\n");
