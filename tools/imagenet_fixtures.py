#!/usr/bin/python3
"""Writes tessera's ImageNet data file and the fixtures its preprocessing tests compare with.

Run from the repository root with Debian's python3-torchvision (0.14) and python3-pil:

    /usr/bin/python3 tools/imagenet_fixtures.py

It writes:

- data/imagenet_classes.json: the 1000 class names of torchvision's
  AlexNet_Weights.IMAGENET1K_V1.meta["categories"], in the order of the weights' outputs.
- tests/fixtures/imagenet/NAME.jpg: photo-like JPEGs (smooth shading, blurred shapes, texture
  and noise, saved by PIL at quality 90) of varied sizes: shrinking by odd factors, a very long
  image, one smaller than 256 (enlarged). All but one use PIL's default 4:2:0 chroma
  subsampling, as cameras do; one keeps full-resolution colour (4:4:4), where decoders have
  no chroma upsampling to disagree about.
- NAME.pil.png: the RGB pixels PIL (libjpeg-turbo) decodes from NAME.jpg, so a test can tell a
  JPEG-decoder difference from a transform difference.
- NAME.eval.png: torchvision's AlexNet_Weights.IMAGENET1K_V1.transforms() of the PIL image,
  before normalisation, as bytes (the float tensor is exactly these bytes / 255).
- expected.json: per image the resized size, and the normalised tensor at a few positions;
  and the ten crops (torchvision's TenCrop(224) of Resize(256) + CenterCrop(256)) at a few
  positions, to check the crop order and mirroring.
"""

import json
import os

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter
from torchvision import transforms
from torchvision.models import AlexNet_Weights

OUT = "tests/fixtures/imagenet"
WEIGHTS = AlexNet_Weights.IMAGENET1K_V1

# (name, width, height, seed, chroma subsampling: 2 = 4:2:0, 0 = 4:4:4)
IMAGES = [
    ("landscape_500x375", 500, 375, 1, 2),
    ("portrait_300x400", 300, 400, 2, 2),
    ("tall_257x1000", 257, 1000, 3, 2),
    ("small_180x240", 180, 240, 4, 2),
    ("full_chroma_320x240", 320, 240, 5, 0),
]


def photo_like(width, height, seed):
    """Smooth shading, blurred ellipses, a striped texture and sensor-like noise, as RGB."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    base = np.stack(
        [
            120 + 80 * np.sin(x / (37 + 9 * c) + c) * np.cos(y / (53 - 7 * c))
            for c in range(3)
        ],
        axis=-1,
    )
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x0, y0 = rng.integers(0, width), rng.integers(0, height)
        w, h = rng.integers(10, max(11, width // 2)), rng.integers(10, max(11, height // 2))
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        draw.ellipse([x0 - w // 2, y0 - h // 2, x0 + w // 2, y0 + h // 2], fill=color)
    image = image.filter(ImageFilter.GaussianBlur(2))
    pixels = np.asarray(image).astype(np.float64)
    stripes = 18 * np.sin(x / 2.3 + y / 5.1)[..., None]
    noise = rng.normal(0, 6, pixels.shape)
    return Image.fromarray(np.clip(pixels + stripes + noise, 0, 255).astype(np.uint8), "RGB")


def sample_positions(height, width, count, seed):
    rng = np.random.default_rng(seed)
    return [[int(rng.integers(0, height)), int(rng.integers(0, width))] for _ in range(count)]


def main():
    categories = WEIGHTS.meta["categories"]
    assert len(categories) == 1000
    with open("data/imagenet_classes.json", "w") as f:
        json.dump(categories, f, indent=2)
        f.write("\n")

    os.makedirs(OUT, exist_ok=True)
    evaluate = WEIGHTS.transforms()
    ten = transforms.Compose(
        [transforms.Resize(256), transforms.CenterCrop(256), transforms.TenCrop(224)]
    )
    expected = {
        "torchvision": __import__("torchvision").__version__,
        "pillow": Image.__version__,
        "mean": list(evaluate.mean),
        "std": list(evaluate.std),
        "images": {},
    }
    for name, width, height, seed, subsampling in IMAGES:
        photo_like(width, height, seed).save(
            f"{OUT}/{name}.jpg", quality=90, subsampling=subsampling
        )
        with Image.open(f"{OUT}/{name}.jpg") as opened:
            decoded = opened.convert("RGB")
        decoded.save(f"{OUT}/{name}.pil.png", optimize=True)
        tensor = evaluate(decoded)  # [3, 224, 224], normalised
        unnormalised = tensor * torch.tensor(evaluate.std)[:, None, None] + torch.tensor(
            evaluate.mean
        )[:, None, None]
        as_bytes = torch.round(unnormalised * 255).clamp(0, 255).to(torch.uint8)
        Image.fromarray(as_bytes.permute(1, 2, 0).numpy(), "RGB").save(
            f"{OUT}/{name}.eval.png", optimize=True
        )
        resized = transforms.Resize(256)(decoded)
        positions = sample_positions(224, 224, 32, seed)
        crops = ten(decoded)
        crop_positions = sample_positions(224, 224, 8, seed + 100)
        expected["images"][name] = {
            "width": width,
            "height": height,
            "chroma": "4:4:4" if subsampling == 0 else "4:2:0",
            "resized": [resized.height, resized.width],
            "positions": positions,
            "normalised": [[float(tensor[c, y, x]) for c in range(3)] for y, x in positions],
            "tenCropPositions": crop_positions,
            "tenCrop": [
                [[int(np.asarray(crop)[y, x, c]) for c in range(3)] for y, x in crop_positions]
                for crop in crops
            ],
        }
    with open(f"{OUT}/expected.json", "w") as f:
        json.dump(expected, f)
        f.write("\n")


if __name__ == "__main__":
    main()
