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
  outfile: "dist/barrage-sdk.js",
});
