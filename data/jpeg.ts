/**
 * A JPEG decoder whose pixels equal PIL's: PIL decodes JPEGs with libjpeg-turbo and its
 * defaults (integer "islow" IDCT, fancy chroma upsampling, YCbCr -> RGB in fixed point), and
 * torchvision's ImageNet transforms start from those pixels. Decoding the same file to the
 * same bytes removes the decoder as a source of disagreement with PyTorch.
 *
 * The pipeline, one file per stage:
 *
 * 1. Markers (`jpeg_markers.ts`): the segments before and between the scans give the frame
 *    (size, components and their sampling factors), the quantisation and Huffman tables, the
 *    restart interval, and whether 3 components are YCbCr or RGB.
 * 2. Entropy decoding (`jpeg_huffman.ts`): each scan's Huffman-coded bits become quantised
 *    DCT coefficients, 64 per 8x8 block, stored per component. A sequential file has one scan
 *    per component group; a progressive file refines the same coefficients over many scans
 *    (spectral selection and successive approximation), so all coefficients are kept until the
 *    last scan.
 * 3. Pixels (`jpeg_pixels.ts`): each block is dequantised and inverse-transformed (islow IDCT)
 *    to 8x8 samples; subsampled chroma (4:2:2, 4:2:0) is enlarged with libjpeg's triangle
 *    filter; YCbCr becomes RGB. A progressive file whose scans stop before its low-frequency
 *    coefficients are exact has them estimated from neighbouring blocks first, as libjpeg's
 *    block smoothing does (`jpeg_smoothing.ts`); a complete file never needs it.
 *
 * Supported: 8-bit sequential (baseline and extended) and progressive Huffman JPEGs with 1
 * (grayscale) or 3 components, any integer sampling ratios, restart markers, the JFIF and
 * Adobe (APP14) colour-transform conventions, and the corrupt or incomplete data PIL still
 * decodes (see `jpeg_huffman.ts`). Refused with a {@link JpegError} naming the file and the
 * feature: arithmetic coding, lossless and hierarchical JPEGs, 12-bit samples, CMYK and other
 * 4-component files, files that end inside a scan (PIL refuses them as truncated too), and
 * progressive files cut inside their last scan that libjpeg would smooth.
 *
 * Untrusted input: every length is checked; images over 2^28 pixels are refused; coefficient
 * memory is allocated only when a scan starts and only if the data left in the file could
 * code every block (one bit per block at the least: a complete file always can, an incomplete
 * progressive one may not and is refused), so a tiny file cannot claim a huge image; at most
 * 1000 scans are read, so work is bounded too.
 *
 * @module
 */

import {
  adobeTransform,
  type Frame,
  isJfif,
  JpegError,
  Marker,
  readFrame,
  readQuantTables,
  refusedFrame,
  threeComponentsAreRgb,
  uint16,
} from "./jpeg_markers.ts";
import {
  decodeScan,
  type HuffmanTable,
  readHuffmanTables,
  type Scan,
  type ScanComponent,
} from "./jpeg_huffman.ts";
import { componentSamples, upsample, yccToRgb } from "./jpeg_pixels.ts";
import { needsSmoothing, smoothedSamples } from "./jpeg_smoothing.ts";
import type { ImageCHW } from "./dataset.ts";
import { checkArgument } from "../tensor/options.ts";

export { JpegError } from "./jpeg_markers.ts";

/** Scans allowed per file: each visits every block, so unbounded scans are unbounded work. */
const MAX_SCANS = 1000;

/** Everything the markers before a scan have set. */
interface DecoderState {
  frame?: Frame;
  quant: (Uint16Array | undefined)[];
  dc: (HuffmanTable | undefined)[];
  ac: (HuffmanTable | undefined)[];
  restartInterval: number;
  sawJfif: boolean;
  adobe?: number;
  scans: number;
  lastScanRanOut?: boolean;
}

/**
 * Decodes a JPEG to RGB bytes ([3, H, W], grayscale repeated in all three channels), equal to
 * PIL's `Image.open(file).convert("RGB")`; errors are {@link JpegError}s naming `name`.
 *
 * @example
 * ```ts
 * import { decodeJpeg } from "./jpeg.ts";
 * const file = "tests/fixtures/jpeg/pil_420_17x9.jpg";
 * const image = decodeJpeg(await Deno.readFile(file), file);
 * console.log(image.width, image.height); // 17 9; image.data: R plane, then G, then B
 * ```
 */
export function decodeJpeg(bytes: Uint8Array, name: string): ImageCHW<Uint8Array> {
  checkArgument("decodeJpeg", "bytes", bytes, "bytes");
  checkArgument("decodeJpeg", "name (the file's name, for messages)", name, "string");
  if (bytes.length < 4 || bytes[0] !== 0xff || bytes[1] !== Marker.SOI) {
    throw new JpegError(name, "no start-of-image marker (FF D8)");
  }
  const state: DecoderState = {
    quant: [],
    dc: [],
    ac: [],
    restartInterval: 0,
    sawJfif: false,
    scans: 0,
  };
  let at = 2;
  for (;;) {
    // Find the next marker, skipping fill bytes and garbage as libjpeg does.
    while (at < bytes.length && bytes[at] !== 0xff) at++;
    while (at + 1 < bytes.length && bytes[at + 1] === 0xff) at++;
    if (at + 1 >= bytes.length) {
      throw new JpegError(name, "truncated: the file ends before the end-of-image marker");
    }
    const marker = bytes[at + 1];
    at += 2;
    if (marker === Marker.EOI) break;
    if (marker === 0 || (marker >= Marker.RST0 && marker <= Marker.RST7) || marker === 0x01) {
      continue; // stray stuffed byte or restart marker between segments: no length
    }
    const length = uint16(bytes, at, bytes.length, name);
    const end = at + length;
    if (length < 2 || end > bytes.length) {
      throw new JpegError(name, `marker FF ${hex(marker)} has a bad length ${length}`);
    }
    if (marker === Marker.SOS) {
      at = startScan(bytes, at + 2, end, state, name);
    } else {
      readSegment(bytes, marker, at + 2, end, state, name);
      at = end;
    }
  }
  if (state.frame === undefined || state.scans === 0) {
    throw new JpegError(name, "no image data (no frame or no scan before the end-of-image)");
  }
  return toRgb(state.frame, state, name);
}

function hex(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}

/** Handles every segment but SOS: tables, frame, restart interval, APP0/APP14. */
function readSegment(
  bytes: Uint8Array,
  marker: number,
  at: number,
  end: number,
  state: DecoderState,
  name: string,
): void {
  const refused = refusedFrame(marker);
  if (refused) throw new JpegError(name, `${refused} is not supported`);
  if (marker === Marker.SOF0 || marker === Marker.SOF1 || marker === Marker.SOF2) {
    if (state.frame) throw new JpegError(name, "more than one frame header (SOF)");
    state.frame = readFrame(bytes, at, end, marker === Marker.SOF2, name);
  } else if (marker === Marker.DQT) {
    readQuantTables(bytes, at, end, state.quant, name);
  } else if (marker === Marker.DHT) {
    readHuffmanTables(bytes, at, end, state.dc, state.ac, name);
  } else if (marker === Marker.DRI) {
    state.restartInterval = uint16(bytes, at, end, name);
  } else if (marker === Marker.DNL) {
    throw new JpegError(name, "a DNL marker (height defined after the scan) is not supported");
  } else if (marker === Marker.APP0 && isJfif(bytes, at, end)) {
    state.sawJfif = true;
  } else if (marker === Marker.APP14) {
    state.adobe = adobeTransform(bytes, at, end) ?? state.adobe;
  } else if (marker === 0xcc) {
    throw new JpegError(name, "arithmetic coding (DAC marker) is not supported");
  }
  // Everything else (APPn, COM, ...) carries nothing the pixels depend on.
}

/** Reads a scan header at `at`, decodes its data; returns the position of the next marker. */
function startScan(
  bytes: Uint8Array,
  at: number,
  end: number,
  state: DecoderState,
  name: string,
): number {
  const frame = state.frame;
  if (frame === undefined) throw new JpegError(name, "scan (SOS) before the frame header (SOF)");
  const count = bytes[at];
  if (count < 1 || count > 4 || end - at !== 4 + 2 * count) {
    throw new JpegError(name, `scan header (SOS) with ${count} components has a bad length`);
  }
  const components: ScanComponent[] = [];
  for (let i = 0; i < count; i++) {
    const id = bytes[at + 1 + 2 * i], tables = bytes[at + 2 + 2 * i];
    const component = frame.components.find((c) => c.id === id);
    if (!component || components.some((sc) => sc.component === component)) {
      throw new JpegError(name, `scan names component id ${id}, not in the frame or repeated`);
    }
    components.push({ component, dc: state.dc[tables >> 4], ac: state.ac[tables & 15] });
  }
  const p = at + 1 + 2 * count;
  const scan: Scan = {
    components,
    start: bytes[p],
    end: bytes[p + 1],
    high: bytes[p + 2] >> 4,
    low: bytes[p + 2] & 15,
    restartInterval: state.restartInterval,
  };
  if (++state.scans > MAX_SCANS) {
    throw new JpegError(name, `more than ${MAX_SCANS} scans (a real progressive JPEG has ~10)`);
  }
  checkScan(frame, scan, state, name);
  allocateCoefficients(frame, bytes.length - end, name);
  const next = decodeScan(bytes, end, frame, scan, name);
  state.lastScanRanOut = scan.ranOut === true;
  return next;
}

/** Refuses scans libjpeg refuses: bad progression parameters, missing tables. */
function checkScan(frame: Frame, scan: Scan, state: DecoderState, name: string): void {
  const { start, end, high, low, components } = scan;
  if (frame.progressive) {
    const dc = start === 0;
    if (
      (dc && end !== 0) || (!dc && (end < start || end > 63 || components.length !== 1)) ||
      low > 13 || (high !== 0 && high !== low + 1)
    ) {
      throw new JpegError(name, `bad progressive scan: Ss=${start} Se=${end} Ah=${high} Al=${low}`);
    }
  } else {
    // A sequential scan codes whole blocks whatever its header says (libjpeg only warns).
    Object.assign(scan, { start: 0, end: 63, high: 0, low: 0 });
  }
  for (const sc of components) {
    const needsDc = !frame.progressive || (start === 0 && high === 0);
    const needsAc = !frame.progressive || start > 0;
    if ((needsDc && !sc.dc) || (needsAc && !sc.ac)) {
      throw new JpegError(name, `scan uses a Huffman table that was not defined (DHT)`);
    }
    sc.component.quant ??= state.quant[sc.component.quantTable];
    if (sc.component.quant === undefined) {
      throw new JpegError(name, `quant table ${sc.component.quantTable} was not defined (DQT)`);
    }
    for (let k = scan.start; k <= scan.end; k++) sc.component.coefficientBits[k] = scan.low;
  }
}

/** Allocates every component's coefficients on the first scan, if the data can fill them. */
function allocateCoefficients(frame: Frame, bytesLeft: number, name: string): void {
  if (frame.components[0].coefficients) return;
  const blocks = frame.components.reduce((n, c) => n + c.blocksPerLine * c.blocksPerColumn, 0);
  if (bytesLeft * 8 < blocks) {
    throw new JpegError(
      name,
      `truncated: ${frame.width}x${frame.height} needs ${blocks} blocks but only ${bytesLeft} bytes follow`,
    );
  }
  for (const c of frame.components) {
    c.coefficients = new Int16Array(c.blocksPerLine * c.blocksPerColumn * 64);
  }
}

/** IDCT, upsampling and colour conversion of the decoded coefficients. */
function toRgb(frame: Frame, state: DecoderState, name: string): ImageCHW<Uint8Array> {
  // A component no scan carried (an incomplete progressive file) has no quant table latched;
  // libjpeg's IDCT multiplies by zeros then, giving flat 128.
  const unscanned = frame.components.some((c) => !c.quant);
  for (const c of frame.components) c.quant ??= new Uint16Array(64);
  const smooth = !unscanned && needsSmoothing(frame);
  if (smooth && state.lastScanRanOut) {
    // libjpeg would then smooth the rows after the cut with the previous scan's state.
    throw new JpegError(name, "progressive JPEG cut short inside its last scan");
  }
  const { width, height } = frame;
  const planes = frame.components.map((c) => {
    const samples = smooth ? smoothedSamples(frame, c) : componentSamples(c, c.quant!);
    return upsample(samples, frame.maxH / c.h, frame.maxV / c.v, width, height);
  });
  const plane = width * height;
  const data = new Uint8Array(3 * plane);
  if (planes.length === 1) {
    for (let c = 0; c < 3; c++) data.set(planes[0], c * plane);
  } else if (threeComponentsAreRgb(frame, state.sawJfif, state.adobe)) {
    planes.forEach((p, c) => data.set(p, c * plane));
  } else {
    yccToRgb(planes[0], planes[1], planes[2], data);
  }
  return { data, channels: 3, height, width };
}
