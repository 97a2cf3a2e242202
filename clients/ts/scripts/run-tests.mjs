// Run each test file in its own `node --test`, one after the other: the files share one
// node (one of them kills and restarts it), and Node 18 (Debian's) has no
// --test-concurrency to say so. Arguments: file names to run (default: all).
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";

const dir = "build-test/test";
const wanted = process.argv.slice(2);
const files = readdirSync(dir)
  .filter((f) => f.endsWith(".test.js"))
  .filter((f) => wanted.length === 0 || wanted.some((w) => f.startsWith(w)))
  .sort();
let failed = 0;
for (const file of files) {
  const run = spawnSync(process.execPath, ["--test", `${dir}/${file}`], { stdio: "inherit" });
  if (run.status !== 0) failed += 1;
}
if (files.length === 0) {
  console.error("run-tests: no test files matched");
  process.exit(1);
}
process.exit(failed === 0 ? 0 : 1);
