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
- resize_noise.png and resize_noise_WxH.png: a 41x31 RGB noise image and PIL's bilinear
  resize of it to sizes that shrink, enlarge or mix the two axes (noise makes every
  rounding visible).
- tiny_alexnet_legacy.pth, tiny_alexnet_zip.pth: a torchvision-layout AlexNet state_dict
  saved by torch.save in the legacy format (torchvision's own file is one) and the zip
  format, small enough to commit: random weights, fc6/fc7 16 wide, conv2-conv5 stored as one
  filter broadcast to every output channel and fc6 as one weight per unit broadcast to every
  input (stride-0 views, which torch.save keeps as such); tiny_alexnet.json: PyTorch's class probabilities of each fixture photo through it
  (torchvision's transform of PIL's pixels), centre crop and ten crops: the ten most probable
  classes as [index, probability].
  PyTorch's own CPU forward differs between runs by up to about 5e-6 in these probabilities
  (threaded convolutions), and the legacy file's storage keys are object ids, so rerunning
  this script rewrites these three files with small differences; the tests allow 1e-5.
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


# (width, height) targets for the 41x31 noise image: shrink, enlarge, one of each, extremes.
RESIZE_SIZES = [(13, 9), (97, 64), (41, 5), (100, 12), (3, 120), (7, 31)]


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


def tiny_alexnet():
    """torchvision's AlexNet layout with fc6/fc7 16 wide and mostly broadcast weights."""
    torch.manual_seed(2012)
    features = torch.nn.Sequential(
        torch.nn.Conv2d(3, 64, 11, 4, 2), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2),
        torch.nn.Conv2d(64, 192, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2),
        torch.nn.Conv2d(192, 384, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(384, 256, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(256, 256, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2),
    )
    classifier = torch.nn.Sequential(
        torch.nn.Dropout(), torch.nn.Linear(9216, 16), torch.nn.ReLU(),
        torch.nn.Dropout(), torch.nn.Linear(16, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1000),
    )
    model = torch.nn.Sequential()
    model.add_module("features", features)
    model.add_module("avgpool", torch.nn.AdaptiveAvgPool2d(6))
    model.add_module("flatten", torch.nn.Flatten())
    model.add_module("classifier", classifier)
    state = {}
    for name, p in model.named_parameters():
        fan_in = p[0].numel() if p.dim() > 1 else 1
        if name.endswith("bias"):
            state[name] = torch.randn(p.shape) * 0.01
        elif name in ("features.0.weight", "classifier.4.weight"):
            state[name] = torch.randn(p.shape) * (2.0 / fan_in) ** 0.5
        elif name == "classifier.6.weight":  # large, so the classes' probabilities differ
            state[name] = torch.randn(p.shape) * 0.02
        elif name == "classifier.1.weight":  # one weight per unit for every input: [16, 1]
            state[name] = (torch.randn(p.shape[0], 1) * (2.0 / fan_in) ** 0.5).expand(*p.shape)
        else:  # one filter for every output channel: a stride-0 view of a small storage
            base = torch.randn(1, *p.shape[1:]) * (2.0 / fan_in) ** 0.5
            state[name] = base.expand(*p.shape)
    model.load_state_dict(state)
    model.eval()
    return model, state


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

    noise = Image.fromarray(
        np.random.default_rng(9).integers(0, 256, (31, 41, 3), dtype=np.uint8), "RGB"
    )
    noise.save(f"{OUT}/resize_noise.png")
    for size in RESIZE_SIZES:
        noise.resize(size, Image.BILINEAR).save(f"{OUT}/resize_noise_{size[0]}x{size[1]}.png")

    model, state = tiny_alexnet()
    torch.save(state, f"{OUT}/tiny_alexnet_legacy.pth", _use_new_zipfile_serialization=False)
    torch.save(state, f"{OUT}/tiny_alexnet_zip.pth")
    probabilities = {}
    with torch.no_grad():
        for name, *_ in IMAGES:
            with Image.open(f"{OUT}/{name}.jpg") as opened:
                decoded = opened.convert("RGB")
            centre = torch.softmax(model(evaluate(decoded)[None]), 1)[0]
            views = torch.stack([
                transforms.functional.normalize(
                    transforms.functional.to_tensor(c), evaluate.mean, evaluate.std
                ) for c in ten(decoded)
            ])
            tens = torch.softmax(model(views), 1).mean(0)
            top = lambda p: [[int(i), float(p[i])] for i in torch.argsort(p, descending=True)[:10]]
            probabilities[name] = {"centre": top(centre), "tenCrop": top(tens)}
    with open(f"{OUT}/tiny_alexnet.json", "w") as f:
        json.dump(probabilities, f)
        f.write("\n")


if __name__ == "__main__":
    main()
