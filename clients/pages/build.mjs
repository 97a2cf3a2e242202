// Bundle the pages' scripts into server/transport/static/ (committed: a node serves them
// without npm). No CDN, no runtime dependency outside the bundle.
import { build } from "esbuild";

await build({
  entryPoints: { console: "src/console.ts", live: "src/live.ts" },
  outdir: "../../server/transport/static",
  bundle: true,
  format: "esm",
  target: ["chrome100", "safari15", "firefox100"],
  minify: true,
  sourcemap: false,
  legalComments: "none",
  logLevel: "info",
});
