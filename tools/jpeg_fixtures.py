#!/usr/bin/python3
"""Writes the JPEG decoder's fixtures: small JPEGs and the RGB pixels PIL decodes from them.

Run from the repository root with Debian's python3-pil (libjpeg-turbo) and libjpeg-turbo-progs
(cjpeg, jpegtran):

    /usr/bin/python3 tools/jpeg_fixtures.py

It writes tests/fixtures/jpeg/NAME.jpg and NAME.png (PIL's `Image.open(jpg).convert("RGB")`,
lossless), and cases.json listing each case with what it exercises. The images are smooth
colour gradients with a few sharp edges and noise, so every stage of a decoder (IDCT rounding,
chroma upsampling at the edges, colour conversion) shows in the pixels. Cases:

- PIL's own encoder: 4:2:0 (its default), 4:2:2, 4:4:4, grayscale, progressive, at sizes
  1x1, 2x2, 3x5, 17x9, 33x65, 64x48 (odd sizes leave partial blocks and MCUs).
- cjpeg: restart intervals (in rows and in blocks), other sampling factors (1x2: 4:4:0, which
  libjpeg upsamples vertically with its h1v2 filter; 4x1; 2x1 on one 2x2 chroma), RGB
  without colour transform (Adobe APP14 transform 0), low and high quality.
- jpegtran: progressive with restarts, non-interleaved sequential scans, and a custom
  progression script (spectral selection and successive approximation over several scans).
- Refused files, recorded with the feature they must be refused for: arithmetic coding,
  CMYK, 12-bit (the precision byte patched), lossless (the SOF marker patched).
"""

import json
import os
import subprocess

import numpy as np
from PIL import Image

OUT = "tests/fixtures/jpeg"


def picture(width, height, seed, gray=False):
    """Gradients, a disc and a bar with sharp edges, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    channels = []
    for c in range(1 if gray else 3):
        v = 128 + 90 * np.sin(x / (5 + 3 * c) + c) * np.cos(y / (7 - c))
        v += np.where((x - width / 3) ** 2 + (y - height / 2) ** 2 < (min(width, height) / 3) ** 2,
                      60 - 50 * c, 0)
        v += np.where(np.abs(x - 2 * width / 3) < max(1, width / 10), -70 + 60 * c, 0)
        v += rng.normal(0, 12, v.shape)
        channels.append(v)
    pixels = np.clip(np.stack(channels, -1), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if gray else pixels, "L" if gray else "RGB")


def run(*args):
    subprocess.run(args, check=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = []

    def record(name, what):
        with Image.open(f"{OUT}/{name}.jpg") as opened:
            opened.convert("RGB").save(f"{OUT}/{name}.png", optimize=True)
        cases.append({"name": name, "what": what})

    sizes = [(1, 1), (2, 2), (3, 5), (17, 9), (33, 65), (64, 48)]
    for seed, (w, h) in enumerate(sizes):
        image, gray = picture(w, h, seed), picture(w, h, seed, gray=True)
        for label, subsampling in [("420", 2), ("422", 1), ("444", 0)]:
            name = f"pil_{label}_{w}x{h}"
            image.save(f"{OUT}/{name}.jpg", quality=90, subsampling=subsampling)
            record(name, f"PIL baseline {label}")
        gray.save(f"{OUT}/pil_gray_{w}x{h}.jpg", quality=90)
        record(f"pil_gray_{w}x{h}", "PIL baseline grayscale")
        image.save(f"{OUT}/pil_progressive_420_{w}x{h}.jpg", quality=90, progressive=True)
        record(f"pil_progressive_420_{w}x{h}", "PIL progressive 4:2:0")
        gray.save(f"{OUT}/pil_progressive_gray_{w}x{h}.jpg", quality=85, progressive=True)
        record(f"pil_progressive_gray_{w}x{h}", "PIL progressive grayscale")

    source = picture(61, 43, 7)
    source.save(f"{OUT}/source.ppm")
    cjpeg = [
        ("cjpeg_restart_rows", ["-restart", "1"], "restart every MCU row"),
        ("cjpeg_restart_blocks", ["-restart", "3B", "-sample", "2x2"], "restart every 3 MCUs"),
        ("cjpeg_440", ["-sample", "1x2"], "4:4:0 (h1v2 fancy upsampling)"),
        ("cjpeg_411", ["-sample", "4x1"], "4:1:1 (replicating upsampling)"),
        ("cjpeg_422_tall", ["-sample", "2x1", "-quality", "40"], "4:2:2 at quality 40"),
        ("cjpeg_rgb", ["-rgb"], "RGB without colour transform (Adobe APP14 transform 0)"),
        ("cjpeg_q100", ["-quality", "100", "-sample", "2x2"], "quality 100 4:2:0"),
        ("cjpeg_q5", ["-quality", "5"], "quality 5 (large DC steps, range limiting)"),
    ]
    for name, args, what in cjpeg:
        run("cjpeg", *args, "-outfile", f"{OUT}/{name}.jpg", f"{OUT}/source.ppm")
        record(name, what)

    base = f"{OUT}/pil_420_64x48.jpg"
    with open(f"{OUT}/scans.txt", "w") as f:
        # DC in two bits; the AC bands split and refined bit by bit, luma and chroma apart.
        f.write("0,1,2: 0-0, 0, 1; 0: 1-5, 0, 2; 2: 1-63, 0, 1; 1: 1-63, 0, 1;"
                " 0: 6-63, 0, 2; 0: 1-63, 2, 1; 0,1,2: 0-0, 1, 0;"
                " 2: 1-63, 1, 0; 1: 1-63, 1, 0; 0: 1-63, 1, 0;\n")
    jpegtran = [
        ("jpegtran_progressive_restart", ["-progressive", "-restart", "1"],
         "progressive with a restart every MCU row"),
        ("jpegtran_progressive_restart_blocks", ["-progressive", "-restart", "2B"],
         "progressive with a restart every 2 MCUs (EOB runs cut by restarts)"),
        ("jpegtran_scans", ["-scans", f"{OUT}/scans.txt"],
         "custom progression: spectral selection and successive approximation"),
    ]
    for name, args, what in jpegtran:
        run("jpegtran", *args, "-outfile", f"{OUT}/{name}.jpg", base)
        record(name, what)
    with open(f"{OUT}/noninterleaved_scans.txt", "w") as f:
        f.write("0: 0-63, 0, 0; 1: 0-63, 0, 0; 2: 0-63, 0, 0;\n")
    run("cjpeg", "-scans", f"{OUT}/noninterleaved_scans.txt", "-sample", "2x2",
        "-outfile", f"{OUT}/cjpeg_noninterleaved.jpg", f"{OUT}/source.ppm")
    record("cjpeg_noninterleaved", "sequential, one scan per component (non-interleaved)")

    refused = []
    data = open(f"{OUT}/cjpeg_restart_rows.jpg", "rb").read()
    cut = data.index(b"\xff\xd1")  # the second restart marker, after two MCU rows
    open(f"{OUT}/cut_at_restart.jpg", "wb").write(data[:cut] + b"\xff\xd9")
    record("cut_at_restart", "EOI for the 2nd restart: one MCU from zero bits, the rest gray")
    # Progressive files cut after each of their scans but the last: libjpeg smooths the
    # blocks whose low-frequency coefficients are still inexact (PIL keeps that default).
    for source in ["pil_progressive_420_64x48", "pil_progressive_420_33x65",
                   "pil_progressive_gray_33x65", "jpegtran_scans"]:
        data = open(f"{OUT}/{source}.jpg", "rb").read()
        starts = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\xff\xda"]
        for n in range(1, len(starts)):
            name = f"smoothed_{source.removeprefix('pil_')}_{n}_scans"
            open(f"{OUT}/{name}.jpg", "wb").write(data[:starts[n]] + b"\xff\xd9")
            record(name, f"progressive cut after {n} scans: libjpeg's block smoothing")
    with open(f"{OUT}/unrefined_scans.txt", "w") as f:
        # Luma's AC never refined below bit 1: smoothed with the successive-approximation cap.
        f.write("0,1,2: 0-0, 0, 0; 0: 1-63, 0, 1; 1: 1-63, 0, 0; 2: 1-63, 0, 0;\n")
    run("jpegtran", "-scans", f"{OUT}/unrefined_scans.txt", "-outfile",
        f"{OUT}/smoothed_unrefined.jpg", base)
    record("smoothed_unrefined", "progressive with luma AC never refined: block smoothing")

    run("jpegtran", "-arithmetic", "-outfile", f"{OUT}/refused_arithmetic.jpg", base)
    refused.append({"name": "refused_arithmetic", "error": "arithmetic-coded"})
    picture(16, 16, 3).convert("CMYK").save(f"{OUT}/refused_cmyk.jpg", quality=90)
    refused.append({"name": "refused_cmyk", "error": "4-component"})
    # decodeImage sends CMYK to imagescript's decoder: PIL's RGB for comparison.
    Image.open(f"{OUT}/refused_cmyk.jpg").convert("RGB").save(f"{OUT}/refused_cmyk.png")
    data = bytearray(open(f"{OUT}/pil_444_17x9.jpg", "rb").read())
    sof = data.index(b"\xff\xc0")
    patched = data[:]
    patched[sof + 4] = 12  # precision byte
    open(f"{OUT}/refused_12bit.jpg", "wb").write(patched)
    refused.append({"name": "refused_12bit", "error": "12-bit"})
    patched = data[:]
    patched[sof + 1] = 0xC3
    open(f"{OUT}/refused_lossless.jpg", "wb").write(patched)
    refused.append({"name": "refused_lossless", "error": "lossless"})

    for temporary in ("source.ppm", "scans.txt", "noninterleaved_scans.txt", "unrefined_scans.txt"):
        os.remove(f"{OUT}/{temporary}")
    with open(f"{OUT}/cases.json", "w") as f:
        json.dump({"pillow": Image.__version__, "decoded": cases, "refused": refused}, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
