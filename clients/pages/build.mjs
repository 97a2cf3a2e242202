// Bundle the pages' scripts into server/transport/static/ (committed: a node serves them
// without npm). No CDN, no runtime dependency outside the bundle.
import { build } from "esbuild";

await build({
  entryPoints: { console: "src/console.ts", live: "src/live.ts" },
  // BUNDLE_OUT: elsewhere (tests/test_browser_pages.py checks the committed bundles are current).
  outdir: process.env.BUNDLE_OUT || "../../server/transport/static",
  bundle: true,
  format: "esm",
  target: ["chrome100", "safari15", "firefox100"],
  minify: true,
  sourcemap: false,
  legalComments: "none",
  logLevel: "info",
});
