/**
 * Draws convolution filters as tiles on a canvas (both pages show conv1's filters): each
 * filter's values are stretched to its own min..max (mid-grey when flat), since filters differ
 * in scale and a shared range would leave most of them grey.
 *
 * @module
 */

/// <reference lib="dom" />

/**
 * Draws `filters` (each the values one tile shows) as kw × kh tiles, `columns` per row,
 * `scale` canvas pixels per weight and one weight of white between tiles. `rgb(w, i)` gives
 * pixel i's red, green and blue values from the filter's values `w`.
 */
export function drawFilterTiles(
  canvas: HTMLCanvasElement,
  filters: Float32Array[],
  kh: number,
  kw: number,
  columns: number,
  scale: number,
  rgb: (w: Float32Array, i: number) => [number, number, number],
): void {
  const ctx = canvas.getContext("2d")!;
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.imageSmoothingEnabled = false;
  const tile = new OffscreenCanvas(kw, kh);
  const tileCtx = tile.getContext("2d")!;
  filters.forEach((w, f) => {
    let low = Infinity, high = -Infinity;
    for (const v of w) [low, high] = [Math.min(low, v), Math.max(high, v)];
    const byte = (v: number) => (high > low ? Math.round((255 * (v - low)) / (high - low)) : 128);
    const image = tileCtx.createImageData(kw, kh);
    for (let i = 0; i < kh * kw; i++) {
      const [r, g, b] = rgb(w, i);
      image.data.set([byte(r), byte(g), byte(b), 255], 4 * i);
    }
    tileCtx.putImageData(image, 0, 0);
    const x = (f % columns) * (kw + 1) * scale, y = Math.floor(f / columns) * (kh + 1) * scale;
    ctx.drawImage(tile, x, y, kw * scale, kh * scale);
  });
}
