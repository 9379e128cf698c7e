/**
 * SVG to PNG for the example's pictures: resvg, a maintained SVG renderer compiled to
 * WebAssembly (`@resvg/resvg-wasm`), with the DejaVu Sans font from the `dejavu-fonts-ttf`
 * package. Both files are read from the local npm cache when this module loads: no network,
 * no native code, nothing beyond `--allow-read`.
 *
 * @module
 */

import { initWasm, Resvg } from "@resvg/resvg-wasm";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
await initWasm(await Deno.readFile(require.resolve("@resvg/resvg-wasm/index_bg.wasm")));
const FONT = await Deno.readFile(require.resolve("dejavu-fonts-ttf/ttf/DejaVuSans.ttf"));
/** The font family every picture's text uses. */
export const FONT_FAMILY = "DejaVu Sans";

/** Rasterises an SVG document to PNG bytes (text in DejaVu Sans). */
export function svgToPng(svg: string): Uint8Array {
  const renderer = new Resvg(svg, {
    font: { fontBuffers: [FONT], loadSystemFonts: false, defaultFontFamily: FONT_FAMILY },
  });
  const image = renderer.render();
  const png = image.asPng();
  image.free();
  renderer.free();
  return png;
}

/** An sRGB colour, each channel in [0, 255]. */
export type Rgb = [number, number, number];

/** An {@link Rgb} as an SVG colour. */
export const css = ([r, g, b]: Rgb): string => `rgb(${r},${g},${b})`;
