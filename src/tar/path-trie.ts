/**
 * A set of normalized tar paths with a few bytes of data each, stored as a trie of interned
 * path components in typed arrays: a node is its parent's node and its name's number, found
 * through one open-addressing hash table. The flattener keeps every final path of an image
 * (to apply whiteouts and opaque directories of newer layers to older ones); as a Map of path
 * strings to small objects that cost ~110 bytes a path, ~13 MiB for an image of 120 000 files.
 * Here a path costs ~20-30 bytes plus its last component when that name is new: the 100 000
 * files of a many-small-files layer share a few hundred names.
 *
 * Paths are split at "/" only, so two different strings are always two different nodes
 * (even odd ones a whiteout can name, like "a/" or ""). A node's ancestors are the nodes of
 * its leading components: "." is a child of the root like any name, never an ancestor.
 * A node with no flags set is as good as absent: callers give meaning to the flags.
 */
export class PathTrie {
  /** Component string -> its number. Names are copied flat once, so they pin no whole path. */
  private readonly names = new Map<string, number>();
  /** Number -> component string (the same strings as in `names`). */
  private readonly nameList: string[] = [];
  /** Node 0 is the root (no path); nodes 1..count-1 are paths. */
  private count = 1;
  private parents = new Int32Array(1024);
  private nameIds = new Int32Array(1024);
  private flagBits = new Uint8Array(1024);
  private values = new Int32Array(1024);
  /** Open addressing on (parent, name): node numbers, 0 for an empty slot (the root is nobody's child). */
  private slots = new Int32Array(2048);
  /** Nodes of the leading components seen by the last find/add, outermost first. */
  private trail = new Int32Array(64);
  private trailLength = 0;
  private lastFound = 0;

  /** Number of paths (nodes) held, flagged or not. */
  get size(): number {
    return this.count - 1;
  }

  /**
   * The node of `path`, or 0 when it is not in the trie. Afterwards `ancestorCount` and
   * `ancestor(k)` give the nodes of its ancestors that are in the trie, nearest first.
   */
  find(path: string): number {
    return this.walk(path, false);
  }

  /** The node of `path`, added (with its ancestors) when missing. Sets the ancestors as find does. */
  add(path: string): number {
    return this.walk(path, true);
  }

  /** How many ancestors of the last path given to find/add are in the trie. */
  get ancestorCount(): number {
    return this.lastFound ? this.trailLength - 1 : this.trailLength;
  }

  /** The k-th nearest ancestor (k = 0: the parent) of the last path given to find/add. */
  ancestor(k: number): number {
    return this.trail[this.ancestorCount - 1 - k]!;
  }

  flags(node: number): number {
    return this.flagBits[node]!;
  }

  setFlags(node: number, bits: number): void {
    this.flagBits[node]! |= bits;
  }

  /** A 32-bit number stored with the node (0 until set). */
  value(node: number): number {
    return this.values[node]!;
  }

  setValue(node: number, v: number): void {
    this.values[node] = v;
  }

  /** The last component of a node's path. */
  nameOf(node: number): string {
    return this.nameList[this.nameIds[node]!]!;
  }

  /** The nodes directly under `node` (0: the top-level paths), oldest first. Scans every node. */
  children(node: number): number[] {
    const out: number[] = [];
    for (let n = 1; n < this.count; n++) if (this.parents[n] === node) out.push(n);
    return out;
  }

  private walk(path: string, create: boolean): number {
    let node = 0;
    let depth = 0;
    let start = 0;
    this.lastFound = 0;
    for (;;) {
      const slash = path.indexOf("/", start);
      const end = slash < 0 ? path.length : slash;
      const name = path.slice(start, end);
      let id = this.names.get(name);
      let child = 0;
      if (id !== undefined) child = this.child(node, id);
      if (child === 0) {
        if (!create) break;
        if (id === undefined) {
          id = this.nameList.length;
          const copy = flatCopy(name);
          this.names.set(copy, id);
          this.nameList.push(copy);
        }
        child = this.addChild(node, id);
      }
      node = child;
      if (depth === this.trail.length) {
        const bigger = new Int32Array(depth * 2);
        bigger.set(this.trail);
        this.trail = bigger;
      }
      this.trail[depth++] = node;
      if (slash < 0) {
        this.lastFound = node;
        break;
      }
      start = slash + 1;
    }
    this.trailLength = depth;
    return this.lastFound;
  }

  private child(parent: number, name: number): number {
    const mask = this.slots.length - 1;
    for (let i = slotOf(parent, name) & mask; ; i = (i + 1) & mask) {
      const n = this.slots[i]!;
      if (n === 0 || (this.parents[n] === parent && this.nameIds[n] === name)) return n;
    }
  }

  private addChild(parent: number, name: number): number {
    const n = this.count++;
    if (n === this.parents.length) this.growNodes();
    this.parents[n] = parent;
    this.nameIds[n] = name;
    // Kept at most half full, so probes stay short.
    if (2 * this.count > this.slots.length) this.rehash(this.slots.length * 2);
    else this.place(n);
    return n;
  }

  private place(n: number): void {
    const mask = this.slots.length - 1;
    let i = slotOf(this.parents[n]!, this.nameIds[n]!) & mask;
    while (this.slots[i] !== 0) i = (i + 1) & mask;
    this.slots[i] = n;
  }

  private rehash(size: number): void {
    this.slots = new Int32Array(size);
    for (let n = 1; n < this.count; n++) this.place(n);
  }

  private growNodes(): void {
    const size = this.parents.length * 2;
    const grow = <T extends Int32Array | Uint8Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.parents = grow(this.parents, (n) => new Int32Array(n));
    this.nameIds = grow(this.nameIds, (n) => new Int32Array(n));
    this.flagBits = grow(this.flagBits, (n) => new Uint8Array(n));
    this.values = grow(this.values, (n) => new Int32Array(n));
  }
}

function slotOf(parent: number, name: number): number {
  let h = Math.imul(parent, 0x9e3779b1) ^ Math.imul(name + 0x7f4a7c15, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return (h ^ (h >>> 13)) >>> 0;
}

/**
 * A copy of `s` that does not point into a longer string: V8 makes a substring of 13 or more
 * characters a view of the whole (here: a whole path), which would then live as long as the name.
 */
function flatCopy(s: string): string {
  if (s.length < 13) return s;
  const copy = Buffer.from(s, "utf8").toString("utf8");
  return copy === s ? copy : s;
}
