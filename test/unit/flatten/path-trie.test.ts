import assert from "node:assert/strict";
import { test } from "node:test";
import { ancestorsOf, PathTrie } from "../../../src/tar/index.js";

/** The nodes find/add reported as ancestors of the last path, nearest first. */
function ancestors(trie: PathTrie): number[] {
  return Array.from({ length: trie.ancestorCount }, (_, k) => trie.ancestor(k));
}

test("find and add: one node per path string, ancestors nearest first, flags and values per node", () => {
  const trie = new PathTrie();
  assert.equal(trie.find("a/b/c"), 0);
  assert.equal(trie.ancestorCount, 0);
  const c = trie.add("a/b/c");
  const [b, a] = ancestors(trie) as [number, number];
  assert.equal(trie.size, 3);
  assert.equal(trie.find("a/b"), b);
  assert.deepEqual(ancestors(trie), [a]);
  assert.equal(trie.find("a"), a);
  assert.deepEqual(ancestors(trie), []);
  // Not held: the ancestors that are held are still reported.
  assert.equal(trie.find("a/b/c/d/e"), 0);
  assert.deepEqual(ancestors(trie), [c, b, a]);
  assert.equal(trie.find("a/x/c"), 0);
  assert.deepEqual(ancestors(trie), [a]);
  assert.equal(trie.add("a/b/c"), c, "adding again gives the same node");
  assert.equal(trie.size, 3);
  // The same name under another parent is another node.
  assert.notEqual(trie.add("x/b/c"), c);
  trie.setFlags(c, 1);
  trie.setFlags(c, 4);
  trie.setValue(c, 123456789);
  assert.equal(trie.flags(c), 5);
  assert.equal(trie.value(c), 123456789);
  assert.equal(trie.flags(b), 0);
  assert.equal(trie.value(b), 0);
  assert.equal(trie.flags(0), 0, "node 0 (not found) has no flags");
});

test("odd strings a whiteout can name are paths of their own; '.' is nobody's ancestor", () => {
  const trie = new PathTrie();
  const odd = ["", "a/", "a", ".", "a/.", "..", "a//b"];
  const nodes = odd.map((p) => trie.add(p));
  assert.equal(new Set(nodes).size, odd.length);
  for (const [i, p] of odd.entries()) assert.equal(trie.find(p), nodes[i], p);
  trie.find("etc/passwd");
  assert.deepEqual(ancestors(trie), [], "'.' is not an ancestor of a top-level path");
  trie.find(".");
  assert.deepEqual(ancestors(trie), []);
});

test("agrees with a map of path strings over many random paths (growth of nodes, table and trail)", () => {
  let seed = 42;
  const rand = (n: number) => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const names = ["usr", "lib", "x", "ünïcödé", "a-name-longer-than-thirteen-characters", "f", "."];
  const trie = new PathTrie();
  const model = new Map<string, number>();
  const nodeOf = new Map<string, number>();
  for (let i = 0; i < 20000; i++) {
    const depth = 1 + rand(i % 1000 === 0 ? 80 : 6);
    const parts = Array.from({ length: depth }, () => `${names[rand(names.length)]}${rand(30)}`);
    const path = parts.join("/");
    if (rand(3) === 0) {
      const node = trie.find(path);
      assert.equal(node, nodeOf.get(path) ?? 0, path);
      if (node) assert.equal(trie.value(node), model.get(path) ?? 0);
    } else {
      const node = trie.add(path);
      if (nodeOf.has(path)) assert.equal(node, nodeOf.get(path));
      trie.setValue(node, i);
      model.set(path, i);
      nodeOf.set(path, node);
      // Every ancestor is a node now, reported nearest first; find gives the same nodes.
      const got = ancestors(trie);
      const above = [...ancestorsOf(path)];
      assert.equal(got.length, above.length);
      for (const [k, a] of above.entries()) {
        if (nodeOf.has(a)) assert.equal(got[k], nodeOf.get(a), a);
        nodeOf.set(a, got[k]!);
      }
      for (const [k, a] of above.entries()) assert.equal(trie.find(a), got[k]);
    }
  }
  for (const [path, v] of model) assert.equal(trie.value(trie.find(path)), v);
  assert.equal(trie.size, nodeOf.size);
  assert.ok(trie.size > 30000, `${trie.size} nodes`);
});

test("children and nameOf: the nodes under a node, oldest first, with their names", () => {
  const trie = new PathTrie();
  for (const p of ["usr/lib/x", "etc", "usr/bin", "usr/lib/y", "a-name-longer-than-thirteen/z"]) trie.add(p);
  const names = (node: number) => trie.children(node).map((n) => trie.nameOf(n));
  assert.deepEqual(names(0), ["usr", "etc", "a-name-longer-than-thirteen"]);
  assert.deepEqual(names(trie.find("usr")), ["lib", "bin"]);
  assert.deepEqual(names(trie.find("usr/lib")), ["x", "y"]);
  assert.deepEqual(names(trie.find("etc")), []);
});
