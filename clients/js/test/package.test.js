// The package could be published as it is: its manifest names what it
// ships, it has no dependencies, and its hand-written declarations
// declare every name the module exports, and no other.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import * as client from "../emojicast.js";

const read = (name) => readFileSync(new URL(`../${name}`, import.meta.url), "utf8");

test("package.json", () => {
  const pkg = JSON.parse(read("package.json"));
  assert.match(pkg.name, /^@emojicast\/[a-z-]+$/);
  assert.match(pkg.version, /^\d+\.\d+\.\d+$/);
  assert.equal(pkg.type, "module");
  assert.deepEqual(pkg.exports["."], { types: "./emojicast.d.ts", default: "./emojicast.js" });
  assert.equal(pkg.types, "./emojicast.d.ts");
  assert.deepEqual([...pkg.files].sort(), ["README.md", "emojicast.d.ts", "emojicast.js"]);
  assert.equal(pkg.engines.node, ">=20");
  // The repository's license; npm ships the package's own copy of it.
  assert.equal(pkg.license, "MIT");
  assert.equal(read("LICENSE"), readFileSync(new URL("../../../LICENSE", import.meta.url), "utf8"));
  for (const k of ["dependencies", "peerDependencies", "optionalDependencies"]) assert.equal(pkg[k], undefined, k);
  for (const f of pkg.files) assert.ok(read(f).length > 0, f);
});

test("the declarations match the module's exports", () => {
  const declared = new Set([...read("emojicast.d.ts").matchAll(/^export (?:const|function|class) (\w+)/gm)].map((m) => m[1]));
  const exported = new Set(Object.keys(client));
  assert.deepEqual([...declared].sort(), [...exported].sort());
});
