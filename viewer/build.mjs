// Bundles the viewer, uploader and hashing worker into pathology_hub/static/dist.
// Everything the pages need is emitted here (no CDN): the pages run under a strict CSP
// that only allows same-origin scripts, styles and images.
import { build, context } from "esbuild";
import { cp, mkdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, "..", "pathology_hub", "static", "dist");
const watch = process.argv.includes("--watch");

const options = {
  entryPoints: {
    viewer: join(here, "src", "viewer.js"),
    upload: join(here, "src", "upload.js"),
    "sha256-worker": join(here, "src", "sha256-worker.js"),
  },
  outdir,
  bundle: true,
  format: "iife",
  platform: "browser",
  target: ["es2020", "chrome90", "firefox90", "safari14"],
  minify: !watch,
  sourcemap: "linked",
  legalComments: "linked",
  logLevel: "info",
};

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });
// OpenSeadragon's button/navigator images, referenced through config.prefixUrl.
await cp(
  join(here, "node_modules", "openseadragon", "build", "openseadragon", "images"),
  join(outdir, "openseadragon", "images"),
  { recursive: true },
);

if (watch) {
  const ctx = await context(options);
  await ctx.watch();
} else {
  await build(options);
}
