/**
 * JPEG and PNG decoding (and PNG encoding, for tests and tools) through imagescript's
 * WebAssembly and pure-JavaScript codecs.
 *
 * Why not `import { Image } from "imagescript"`: the package's main module loads a native
 * addon for its encoders at import time, which needs `--allow-ffi` even to decode. The
 * decoders themselves are WebAssembly (`wasm/node/*.js`) and the PNG encoder is plain
 * JavaScript (`png/node.js`), so importing those directly needs only `--allow-read` (the
 * modules read their `.wasm` files).
 *
 * The WebAssembly decoders are imported on first use, not at module load: they read their
 * `.wasm` files as soon as they are evaluated, and importing `data/mod.ts` (for IDX files,
 * transforms or the loader) should need no permission until an image is actually decoded.
 * The PNG encoder is plain JavaScript and needs no permission, so it is imported normally.
 *
 * @module
 */

import pngJs from "imagescript/png/node.js";
import type { ImageCHW } from "./dataset.ts";

/** The WebAssembly decoders of imagescript, imported once on first use. */
interface Codecs {
  jpeg: JpegCodec;
  png: PngCodec;
}

let codecs: Promise<Codecs> | undefined;

/** Imports (once) and initialises imagescript's two WebAssembly decoders. */
function loadCodecs(): Promise<Codecs> {
  codecs ??= (async () => {
    const [jpegWasm, pngWasm] = await Promise.all([
      import("imagescript/wasm/node/jpeg.js"),
      import("imagescript/wasm/node/png.js"),
    ]);
    const [jpeg, png] = await Promise.all([jpegWasm.default.init(), pngWasm.default.init()]);
    return { jpeg: jpeg as JpegCodec, png: png as PngCodec };
  })();
  // A failed import (no read permission yet) is retried by the next call.
  codecs.catch(() => {
    codecs = undefined;
  });
  return codecs;
}

interface JpegFramebuffer {
  width: number;
  height: number;
  /** 0: grayscale, 1: RGB, 2: CMYK (Adobe, stored inverted). */
  format: number;
  buffer: Uint8Array;
}

interface JpegCodec {
  decode(bytes: Uint8Array): JpegFramebuffer;
}

interface PngCodec {
  decode(bytes: Uint8Array): { width: number; height: number; framebuffer: Uint8Array };
}

interface PngEncoder {
  encode(
    data: Uint8Array,
    options: { width: number; height: number; channels: number; level?: number },
  ): Uint8Array;
}

/** True for the JPEG start-of-image marker followed by another marker (`ff d8 ff`). */
export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** True for the 8-byte PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_MAGIC.every((b, i) => bytes[i] === b);
}

/**
 * Decodes a JPEG to RGB CHW bytes with imagescript; grayscale is replicated, CMYK converted.
 * Only `decodeImage`'s fallback for CMYK files: the package's decoder is `decodeJpeg` (jpeg.ts).
 */
export async function decodeJpegImagescript(bytes: Uint8Array): Promise<ImageCHW<Uint8Array>> {
  const codec = (await loadCodecs()).jpeg;
  const { width, height, format, buffer } = codec.decode(bytes);
  const plane = width * height;
  const data = new Uint8Array(3 * plane);
  if (format === 0) {
    for (let c = 0; c < 3; c++) data.set(buffer.subarray(0, plane), c * plane);
  } else if (format === 1) {
    for (let i = 0; i < plane; i++) {
      data[i] = buffer[3 * i];
      data[plane + i] = buffer[3 * i + 1];
      data[2 * plane + i] = buffer[3 * i + 2];
    }
  } else if (format === 2) {
    // Adobe CMYK JPEGs store inverted values: channel = 255 * (1 - C) * (1 - K), as imagescript.
    for (let i = 0; i < plane; i++) {
      const k = 1 - buffer[4 * i + 3] / 255;
      for (let c = 0; c < 3; c++) {
        data[c * plane + i] = Math.round(255 * (1 - buffer[4 * i + c] / 255) * k);
      }
    }
  } else {
    throw new Error(`unsupported JPEG pixel format ${format}`);
  }
  return { data, channels: 3, height, width };
}

/** Decodes a PNG to RGB CHW bytes (alpha dropped: ImageNet photos are opaque). */
export async function decodePng(bytes: Uint8Array): Promise<ImageCHW<Uint8Array>> {
  const codec = (await loadCodecs()).png;
  const { width, height, framebuffer } = codec.decode(bytes);
  const plane = width * height;
  const data = new Uint8Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    data[i] = framebuffer[4 * i];
    data[plane + i] = framebuffer[4 * i + 1];
    data[2 * plane + i] = framebuffer[4 * i + 2];
  }
  return { data, channels: 3, height, width };
}

/** Encodes an RGB CHW uint8 image as PNG (pure JavaScript; used to make test folders). */
export function encodePng(image: ImageCHW<Uint8Array>, level = 1): Uint8Array {
  if (image.channels !== 3) {
    throw new RangeError(`encodePng: expected 3 channels, got ${image.channels}`);
  }
  const plane = image.width * image.height;
  const rgba = new Uint8Array(4 * plane);
  for (let i = 0; i < plane; i++) {
    rgba[4 * i] = image.data[i];
    rgba[4 * i + 1] = image.data[plane + i];
    rgba[4 * i + 2] = image.data[2 * plane + i];
    rgba[4 * i + 3] = 255;
  }
  return (pngJs as PngEncoder).encode(rgba, {
    width: image.width,
    height: image.height,
    channels: 4,
    level,
  });
}
