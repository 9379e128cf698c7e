#!/usr/bin/env python3
"""Writes the torch.save fixtures that tests/io/torch_load.test.ts and tests/io/torch_fuzz.test.ts read.

    python3 tools/torch_fixtures.py                    # the small committed files, tests/fixtures/torch/
    python3 tools/torch_fixtures.py --alexnet DIR      # torchvision's AlexNet, random weights (233 MB
                                                       # per file), both formats, an input, its logits
    python3 tools/torch_fixtures.py --paper DIR        # the same for the paper's (tessera's alexnet()),
                                                       # zip format

Then `deno fmt tests/fixtures/torch` (the JSON files are committed as deno fmt writes them).
Needs PyTorch (Debian: apt-get install python3-torch python3-torchvision; written against 1.13).
Every file is seeded and PyTorch runs on one thread, so a rerun writes the same tensors (the
legacy files' bytes differ: their storage keys are memory addresses).

The small set (under 2 MB in all):

  small_zip.pth, small_legacy.pth   one state_dict in both formats: every dtype tessera reads
                                    (float32/64, float16, bfloat16, int64/32/16/8, uint8, bool),
                                    a transposed tensor, two views of one storage, a permuted and
                                    sliced view, an expanded (stride 0) view, a scalar, an empty
                                    tensor, an nn.Parameter
  small_deflated.pth                small_zip.pth re-packed by Python's zipfile with deflate (no
                                    zip64 records, unaligned data)
  small.json                        the expected values of every tensor above, row-major
  nested.pth, model_key.pth         a training checkpoint {epoch, state_dict, optimizer, ...} and
                                    {"model": state_dict}
  mini_zip.pth, mini_legacy.pth     tessera's alexnetMini layout (Caffe names conv1..fc8) trained
                                    three SGD steps in PyTorch; legacy in float16
  mini.json                         a fixed input and PyTorch's logits for both files
  module.pth, list.pth              a whole pickled nn.Module, a list of tensors (not state_dicts)
  int64_overflow.pth                an int64 tensor holding 2**40
  evil_posix_system.pth             __reduce__ calling os.system (zip format)
  evil_unlisted_reduce.pth          __reduce__ calling builtins.eval (legacy format)
  evil_storage_too_big_zip.pth      a storage claiming 10**9 float32 elements, 24 bytes in its record
  evil_storage_too_big_legacy.pth   the same in the legacy layout (the count says 10**9 as well)
  evil_view_outside.pth             a tensor whose size and stride reach past its storage
  evil_recursive.pth                a dict and a list that contain themselves
  evil_zip_bomb.pth                 a deflated storage of 20 MB of zeros (honestly declared)
  evil_zip_bomb_lying.pth           the same stream declared as 24 bytes
"""

import argparse
import collections
import io
import json
import math
import os
import pickle
import struct
import sys
import zipfile

import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "torch")
MAGIC_NUMBER = 0x1950A86A20F9469CFC6C


def number(v):
    """A float or int for JSON; non-finite floats as strings."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def expected(sd):
    """What tessera should produce: dtype, shape and row-major values of each tensor."""
    out = {}
    for name, t in sd.items():
        t = t.detach()
        if t.dtype in (torch.float16, torch.bfloat16, torch.float32):
            dtype, values = "float32", t.float()
        elif t.dtype == torch.float64:
            dtype, values = "float64", t
        else:
            dtype, values = "int32", t.long()
        out[name] = {
            "dtype": dtype,
            "shape": list(t.shape),
            "values": [number(v) for v in values.contiguous().reshape(-1).tolist()],
        }
    return out


def small_state_dict():
    g = torch.Generator().manual_seed(1)
    base = torch.randn(4, 6, generator=g)
    cube = torch.randn(2, 3, 4, generator=g)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4, generator=g)
    sd["f64"] = torch.randn(2, 3, generator=g, dtype=torch.float64)
    specials = [0.0, -0.0, 1.0, -2.5, 65504.0, 6.103515625e-05, 5.960464477539063e-08, math.inf, -math.inf, math.nan]
    sd["f16"] = torch.tensor(specials, dtype=torch.float16)
    sd["bf16"] = torch.cat([
        torch.randn(5, generator=g).to(torch.bfloat16),
        torch.tensor([1e38, -3e-39, math.inf, math.nan], dtype=torch.bfloat16),
    ])
    sd["i64"] = torch.tensor([0, 1, -1, 2**31 - 1, -(2**31), 123456], dtype=torch.int64)
    sd["i32"] = torch.tensor([[7, -8], [2**31 - 1, -(2**31)]], dtype=torch.int32)
    sd["i16"] = torch.tensor([-32768, 32767, 5], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127, 0], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255, 7], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["transposed"] = torch.randn(3, 5, generator=g).t()  # shape [5, 3], stride [1, 5]
    sd["shared_rows"] = base[1:3]  # offset 6 into base's storage
    sd["shared_column"] = base[:, 2]  # stride [6], offset 2, the same storage
    sd["permuted"] = cube.permute(2, 0, 1)[1:, :, ::2]
    sd["expanded"] = torch.arange(3.0).expand(4, 3)  # stride [0, 1]
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["param"] = nn.Parameter(torch.randn(2, generator=g))
    assert not sd["transposed"].is_contiguous()
    assert sd["shared_rows"].storage().data_ptr() == sd["shared_column"].storage().data_ptr()
    return sd


def save(obj, name, legacy=False):
    path = os.path.join(OUT, name)
    torch.save(obj, path, _use_new_zipfile_serialization=not legacy)
    return path


def fixed_time(name, method):
    """A zip entry dated 1980-01-01, so a rerun writes the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = method
    return info


def rezip_deflated(source, target):
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(fixed_time(info.filename, zipfile.ZIP_DEFLATED), zin.read(info.filename))


# (out channels, kernel, stride, padding, groups) of conv1..conv5, as in models/alexnet.ts.
MINI = dict(convs=[(32, 5, 1, 2, 1), (64, 5, 1, 2, 2), (96, 3, 1, 1, 1), (96, 3, 1, 1, 2), (64, 3, 1, 1, 2)],
            hidden=256, channels=1, classes=10, flat=64 * 2 * 2)
PAPER = dict(convs=[(96, 11, 4, 0, 1), (256, 5, 1, 2, 2), (384, 3, 1, 1, 1), (384, 3, 1, 1, 2), (256, 3, 1, 1, 2)],
             hidden=4096, channels=3, classes=1000, flat=256 * 6 * 6)


class CaffeAlexNet(nn.Sequential):
    """tessera's alexnet() (spec PAPER, 227x227x3 in) or alexnetMini() (MINI, 28x28x1), with
    their Caffe names (conv1, norm1, pool1, ..., fc8), LRN as cuda-convnet ran it, groups 2."""

    def __init__(self, spec):
        layers = collections.OrderedDict()
        channels = spec["channels"]
        for n, (out, kernel, stride, padding, groups) in enumerate(spec["convs"], start=1):
            layers[f"conv{n}"] = nn.Conv2d(channels, out, kernel, stride, padding, groups=groups)
            channels = out
            layers[f"relu{n}"] = nn.ReLU()
            if n <= 2:
                layers[f"norm{n}"] = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
            if n <= 2 or n == 5:
                layers[f"pool{n}"] = nn.MaxPool2d(3, 2)
        layers["flatten"] = nn.Flatten()
        width = spec["flat"]
        for n in (6, 7):
            layers[f"fc{n}"] = nn.Linear(width, spec["hidden"])
            width = spec["hidden"]
            layers[f"relu{n}"] = nn.ReLU()
            layers[f"drop{n}"] = nn.Dropout(0.5)
        layers["fc8"] = nn.Linear(width, spec["classes"])
        super().__init__(layers)


def mini_fixtures():
    torch.manual_seed(2)
    model = CaffeAlexNet(MINI)
    sgd = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(3):  # a PyTorch-trained state, not just an initialisation
        x = torch.randn(8, 1, 28, 28)
        y = torch.randint(0, 10, (8,))
        sgd.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        sgd.step()
    model.eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        logits32 = model(x)
        save(model.state_dict(), "mini_zip.pth")
        half = collections.OrderedDict((k, v.half()) for k, v in model.state_dict().items())
        save(half, "mini_legacy.pth", legacy=True)
        # PyTorch's own answer for the half weights: the same net run in float32 on their values.
        model.load_state_dict(collections.OrderedDict((k, v.float()) for k, v in half.items()))
        logits16 = model(x)
    with open(os.path.join(OUT, "mini.json"), "w") as f:
        json.dump({
            "input": {"shape": list(x.shape), "values": x.reshape(-1).tolist()},
            "logits_zip": logits32.reshape(-1).tolist(),
            "logits_legacy": logits16.reshape(-1).tolist(),
            "logits_shape": list(logits32.shape),
        }, f)


# ---- hand-built files, for what torch.save never writes -------------------------------------

class FakeStorage:
    """A storage as the pickle names it: ('storage', FloatStorage, key, 'cpu', numel[, view])."""

    def __init__(self, key, numel, legacy=False):
        self.key, self.numel, self.legacy = key, numel, legacy


class FakeTensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, collections.OrderedDict())

    def __reduce__(self):
        return (torch._utils._rebuild_tensor_v2, self.args)


class FakePickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, FakeStorage):
            pid = ("storage", torch.FloatStorage, obj.key, "cpu", obj.numel)
            return pid + (None,) if obj.legacy else pid
        return None


def fake_pickle(obj):
    buffer = io.BytesIO()
    FakePickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def write_zip(name, entries, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(os.path.join(OUT, name), "w", method) as z:
        for entry, data in entries.items():
            z.writestr(fixed_time(entry, method), data)


def write_legacy(name, obj, storages):
    """The legacy layout with storages given as (key, declared count, raw bytes)."""
    with open(os.path.join(OUT, name), "wb") as f:
        for header in (MAGIC_NUMBER, 1001, {"protocol_version": 1001, "little_endian": True,
                                            "type_sizes": {"short": 2, "int": 4, "long": 4}}):
            pickle.dump(header, f, protocol=2)
        f.write(fake_pickle(obj))
        pickle.dump([key for key, _, _ in storages], f, protocol=2)
        for _, count, raw in storages:
            f.write(struct.pack("<q", count) + raw)


class Evil:
    def __init__(self, function, argument):
        self.function, self.argument = function, argument

    def __reduce__(self):
        return (self.function, (self.argument,))


def malicious_fixtures():
    six = struct.pack("<6f", *range(6))
    save({"weight": torch.ones(2), "x": Evil(os.system, "echo pwned")}, "evil_posix_system.pth")
    save({"weight": torch.ones(2), "x": Evil(eval, "1 + 1")}, "evil_unlisted_reduce.pth", legacy=True)

    too_big = collections.OrderedDict(weight=FakeTensor(FakeStorage("0", 10**9), 0, (10**9,), (1,)))
    write_zip("evil_storage_too_big_zip.pth", {
        "archive/data.pkl": fake_pickle(too_big), "archive/data/0": six, "archive/version": b"3\n"})
    too_big = collections.OrderedDict(weight=FakeTensor(FakeStorage("0", 10**9, legacy=True), 0, (10**9,), (1,)))
    write_legacy("evil_storage_too_big_legacy.pth", too_big, [("0", 10**9, six)])

    outside = collections.OrderedDict(weight=FakeTensor(FakeStorage("0", 6), 2, (2, 3), (3, 1)))
    write_zip("evil_view_outside.pth", {
        "archive/data.pkl": fake_pickle(outside), "archive/data/0": six, "archive/version": b"3\n"})

    looped = collections.OrderedDict()
    looped["self"] = looped
    loop = []
    loop.append(loop)
    looped["list"] = loop
    save(looped, "evil_recursive.pth")

    zeros = bytes(20 * 1000 * 1000)
    count = len(zeros) // 4
    bomb = collections.OrderedDict(weight=FakeTensor(FakeStorage("0", count), 0, (count,), (1,)))
    write_zip("evil_zip_bomb.pth", {
        "archive/data.pkl": fake_pickle(bomb), "archive/data/0": zeros, "archive/version": b"3\n"},
        zipfile.ZIP_DEFLATED)
    lying = collections.OrderedDict(weight=FakeTensor(FakeStorage("0", 6), 0, (6,), (1,)))
    write_zip("evil_zip_bomb_lying.pth", {
        "archive/data.pkl": fake_pickle(lying), "archive/data/0": zeros, "archive/version": b"3\n"},
        zipfile.ZIP_DEFLATED)
    declare_size(os.path.join(OUT, "evil_zip_bomb_lying.pth"), "archive/data/0", 24, zlib_crc(six))


def zlib_crc(data):
    import zlib
    return zlib.crc32(data)


def declare_size(path, entry, size, crc):
    """Rewrites `entry`'s uncompressed size and CRC in its local and central headers."""
    data = bytearray(open(path, "rb").read())
    name = entry.encode()
    with zipfile.ZipFile(path) as z:
        info = z.getinfo(entry)
    local = info.header_offset
    assert data[local:local + 4] == b"PK\x03\x04"
    struct.pack_into("<I", data, local + 14, crc)
    struct.pack_into("<I", data, local + 22, size)
    central = data.index(b"PK\x01\x02")
    while data[central + 46:central + 46 + len(name)] != name:
        central = data.index(b"PK\x01\x02", central + 4)
    struct.pack_into("<I", data, central + 16, crc)
    struct.pack_into("<I", data, central + 24, size)
    open(path, "wb").write(bytes(data))


def small_fixtures():
    sd = small_state_dict()
    save(sd, "small_zip.pth")
    save(sd, "small_legacy.pth", legacy=True)
    rezip_deflated(os.path.join(OUT, "small_zip.pth"), os.path.join(OUT, "small_deflated.pth"))
    with open(os.path.join(OUT, "small.json"), "w") as f:
        json.dump(expected(sd), f)

    g = torch.Generator().manual_seed(3)
    torch.manual_seed(3)  # the layers draw their initial weights from the global generator
    net = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1))
    sgd = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.randn(4, 3, generator=g)).sum().backward()
    sgd.step()
    save({"epoch": 7, "state_dict": net.state_dict(), "optimizer": sgd.state_dict(),
          "best_accuracy": 0.875, "note": "checkpoint"}, "nested.pth")
    save({"model": net.state_dict(), "step": 12}, "model_key.pth", legacy=True)
    with open(os.path.join(OUT, "nested.json"), "w") as f:
        json.dump(expected(net.state_dict()), f)
    save(nn.Linear(2, 2), "module.pth")
    save([torch.ones(2), torch.zeros(3)], "list.pth")
    save({"big": torch.tensor([1, 2**40], dtype=torch.int64)}, "int64_overflow.pth")


def full_size_fixtures(out, which):
    """torchvision's AlexNet in both formats ("alexnet"), or the paper's (tessera's alexnet(),
    "paper") in zip, with an input batch and PyTorch's logits as raw little-endian float32."""
    import torchvision

    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    model, size = (torchvision.models.alexnet(), 224) if which == "alexnet" else (CaffeAlexNet(PAPER), 227)
    model.eval()
    torch.save(model.state_dict(), os.path.join(out, f"{which}_zip.pth"))
    if which == "alexnet":
        torch.save(model.state_dict(), os.path.join(out, f"{which}_legacy.pth"), _use_new_zipfile_serialization=False)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        logits = model(x)
    x.numpy().astype("<f4").tofile(os.path.join(out, f"{which}_input.f32"))
    logits.numpy().astype("<f4").tofile(os.path.join(out, f"{which}_logits.f32"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alexnet", metavar="DIR", help="write torchvision's AlexNet files to DIR instead")
    parser.add_argument("--paper", metavar="DIR", help="write the paper's AlexNet files to DIR instead")
    args = parser.parse_args()
    if args.alexnet or args.paper:
        full_size_fixtures(args.alexnet or args.paper, "alexnet" if args.alexnet else "paper")
        return
    # One thread: PyTorch's multithreaded reductions may round differently from run to run.
    torch.set_num_threads(1)
    os.makedirs(OUT, exist_ok=True)
    small_fixtures()
    mini_fixtures()
    malicious_fixtures()
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {os.path.relpath(OUT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
