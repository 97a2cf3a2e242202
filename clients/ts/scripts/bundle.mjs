// One ES module for pages, with every dependency inside (protobuf-es, Connect):
// dist/barrage-sdk.js, served by the node or any static server and imported with
// <script type="module">import { BarrageClient } from "/static/barrage-sdk.js"</script>.
import { build } from "esbuild";

await build({
  entryPoints: ["src/index.ts"],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2022"],
  minify: true,
  sourcemap: false,
  legalComments: "none",
  // BUNDLE_OUT: elsewhere (tests/test_ts_sdk.py checks the committed bundle is current).
  outfile: process.env.BUNDLE_OUT || "dist/barrage-sdk.js",
});
