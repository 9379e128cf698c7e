/**
 * EXIF orientation: cameras store pixels as the sensor read them and record in the EXIF tag
 * Orientation (0x0112) how to turn them for display. A phone photo taken upright usually has
 * Orientation 6 ("rotate 90 degrees clockwise"). Decoders return the stored pixels, so
 * without this step such photos train sideways; torchvision's default loader (PIL's
 * `Image.open`) does not apply it either.
 *
 * The eight values, as the stored image must be transformed for display (and as Pillow's
 * `ImageOps.exif_transpose` does):
 *
 *     1  as stored             5  transpose (mirror along the main diagonal)
 *     2  mirror left-right     6  rotate 90 degrees clockwise
 *     3  rotate 180 degrees    7  transverse (mirror along the other diagonal)
 *     4  mirror top-bottom     8  rotate 90 degrees counter-clockwise
 *
 * The tag is read from a JPEG's APP1 "Exif" segment or a PNG's eXIf chunk; both hold a TIFF
 * structure (byte order, magic 42, offset of the first IFD, 12-byte entries). A missing,
 * truncated or malformed EXIF block, or a value outside 1..8, reads as 1 (as stored), which
 * is also what Pillow does.
 *
 * @module
 */

import type { ImageCHW, PixelArray } from "./dataset.ts";

/** Orientation (1..8) recorded in a JPEG or PNG file; 1 when there is none. */
export function exifOrientation(bytes: Uint8Array): number {
  const tiff = findExif(bytes);
  return tiff ? tiffOrientation(bytes, tiff.start, tiff.end) : 1;
}

/** Byte range of the TIFF structure inside the file's EXIF block, if it has one. */
function findExif(bytes: Uint8Array): { start: number; end: number } | undefined {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    // JPEG: walk the marker segments up to the start of the scan.
    let at = 2;
    while (at + 4 <= bytes.length && bytes[at] === 0xff) {
      const marker = bytes[at + 1];
      if (marker === 0xff) { // fill byte
        at++;
        continue;
      }
      if (marker === 0xda || marker === 0xd9) return undefined; // start of scan, end of image
      if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) { // no length field
        at += 2;
        continue;
      }
      const length = view.getUint16(at + 2, false);
      const start = at + 4, end = at + 2 + length;
      if (length < 2 || end > bytes.length) return undefined;
      const exif = [0x45, 0x78, 0x69, 0x66, 0, 0]; // "Exif\0\0"
      if (marker === 0xe1 && exif.every((b, i) => bytes[start + i] === b)) {
        return { start: start + 6, end };
      }
      at = end;
    }
    return undefined;
  }
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50) {
    // PNG: chunks of [length, type, data, crc] after the 8-byte signature.
    let at = 8;
    while (at + 8 <= bytes.length) {
      const length = view.getUint32(at, false);
      const type = String.fromCharCode(...bytes.subarray(at + 4, at + 8));
      const start = at + 8, end = start + length;
      if (end > bytes.length) return undefined;
      if (type === "eXIf") return { start, end };
      if (type === "IEND") return undefined;
      at = end + 4;
    }
  }
  return undefined;
}

/** The Orientation entry of IFD0 of the TIFF structure in bytes[start, end); 1 if absent. */
function tiffOrientation(bytes: Uint8Array, start: number, end: number): number {
  if (end - start < 8) return 1;
  const view = new DataView(bytes.buffer, bytes.byteOffset + start, end - start);
  const order = String.fromCharCode(bytes[start], bytes[start + 1]);
  if (order !== "II" && order !== "MM") return 1;
  const little = order === "II";
  if (view.getUint16(2, little) !== 42) return 1;
  const ifd = view.getUint32(4, little);
  if (ifd + 2 > view.byteLength) return 1;
  const count = view.getUint16(ifd, little);
  for (let i = 0; i < count; i++) {
    const entry = ifd + 2 + 12 * i;
    if (entry + 12 > view.byteLength) return 1;
    if (view.getUint16(entry, little) !== 0x0112) continue;
    const type = view.getUint16(entry + 2, little);
    // SHORT (3) is the type the standard gives; LONG (4) occurs in the wild.
    const value = type === 3
      ? view.getUint16(entry + 8, little)
      : type === 4
      ? view.getUint32(entry + 8, little)
      : 0;
    return value >= 1 && value <= 8 ? value : 1;
  }
  return 1;
}

/**
 * Turns a stored image into its display orientation (see the module comment). Returns the
 * input itself for orientation 1; values 5 to 8 swap height and width.
 */
export function applyOrientation<T extends PixelArray>(
  image: ImageCHW<T>,
  orientation: number,
): ImageCHW<T> {
  if (!Number.isInteger(orientation) || orientation < 1 || orientation > 8) {
    throw new RangeError(`applyOrientation: orientation must be 1..8, got ${orientation}`);
  }
  if (orientation === 1) return image;
  const { channels, height: h, width: w } = image;
  const swap = orientation >= 5;
  const outH = swap ? w : h, outW = swap ? h : w;
  const data = new (image.data.constructor as { new (n: number): T })(image.data.length);
  // The stored pixel shown at display position (x, y) is (sx, sy), affine in x and y, so its
  // index sy * w + sx is start + x * dx + y * dy.
  const [start, dx, dy] = {
    2: [w - 1, -1, w], // sx = w-1-x, sy = y
    3: [(h - 1) * w + w - 1, -1, -w], // sx = w-1-x, sy = h-1-y
    4: [(h - 1) * w, 1, -w], // sx = x, sy = h-1-y
    5: [0, w, 1], // sx = y, sy = x
    6: [(h - 1) * w, -w, 1], // sx = y, sy = h-1-x
    7: [(h - 1) * w + w - 1, -w, -1], // sx = w-1-y, sy = h-1-x
    8: [w - 1, w, -1], // sx = w-1-y, sy = x
  }[orientation as 2 | 3 | 4 | 5 | 6 | 7 | 8];
  const plane = h * w;
  for (let c = 0; c < channels; c++) {
    const source = image.data.subarray(c * plane, (c + 1) * plane);
    let to = c * plane;
    for (let y = 0; y < outH; y++) {
      let from = start + y * dy;
      for (let x = 0; x < outW; x++, from += dx) data[to++] = source[from];
    }
  }
  return { data, channels, height: outH, width: outW };
}
