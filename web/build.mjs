// Builds the web app into the Python package: src/edgeshare/web/static/{index.html,
// app.js, app.css}. `make web` runs it. The output is deterministic (same sources, same
// bytes) and app.js starts with a banner holding the sha256 of the sources, which
// tests/unit/test_web_bundle.py recomputes to tell a stale bundle:
//   sha256 over, for every file of web/src plus web/index.html and web/build.mjs, in
//   sorted order of its path relative to web/ (with "/"): path, NUL, content, NUL.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const web = dirname(fileURLToPath(import.meta.url));
const out = join(web, "..", "src", "edgeshare", "web", "static");

function walk(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? walk(path) : [path];
  });
}

/** The sources' hash, as the banner records it. */
export function sourcesHash() {
  const files = [...walk(join(web, "src")), join(web, "index.html"), join(web, "build.mjs")]
    .map((path) => relative(web, path).split(sep).join("/"))
    .sort();
  const hash = createHash("sha256");
  for (const rel of files) {
    hash.update(rel);
    hash.update("\0");
    hash.update(readFileSync(join(web, rel)));
    hash.update("\0");
  }
  return hash.digest("hex");
}

const digest = sourcesHash();
mkdirSync(out, { recursive: true });
const common = { bundle: true, minify: true, target: "es2020", logLevel: "warning", legalComments: "none", charset: "utf8" };
await build({
  ...common,
  entryPoints: [join(web, "src", "app.js")],
  outfile: join(out, "app.js"),
  format: "esm",
  banner: { js: `/* edgeshare-web sources sha256:${digest} (built by web/build.mjs: make web) */` },
});
await build({ ...common, entryPoints: [join(web, "src", "app.css")], outfile: join(out, "app.css") });
copyFileSync(join(web, "index.html"), join(out, "index.html"));
console.log(`web: built ${relative(process.cwd(), out)} (sources sha256 ${digest.slice(0, 12)})`);
