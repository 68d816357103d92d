// One guest connection <-> 127.0.0.1:PORT. QEMU's user network runs this once per connection
// for `guestfwd=tcp:ADDR:PORT-cmd:node tcp-relay.mjs PORT` (stdin/stdout are the guest's
// socket), so a guest can open many connections to a host service (a registry client does),
// which the single-connection `-tcp:` chardev form cannot carry.
import { connect } from "node:net";

const port = Number(process.argv[2]);
const sock = connect(port, "127.0.0.1");
process.stdin.pipe(sock);
sock.pipe(process.stdout);
sock.on("error", () => process.exit(1));
sock.on("close", () => process.exit(0));
process.stdin.on("end", () => sock.end());
