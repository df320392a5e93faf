"""Pillow's side of `gantry bench decode`: the same PNGs, the same shapes, one Python
process, one thread; the same table (case, threads, images/s, mean), so
`tests/peers/decode.sh` can set the two side by side.

Per image it does what Keras' and torchvision's loaders do: open, convert to the mode,
resize bilinear, scale to [0, 1] float32 (as NumPy code writes it; HWC, not transposed).
"""

import argparse
import pathlib
import time

import numpy as np
from PIL import Image

KINDS = [("gray", 256, 256, "L"), ("rgb", 700, 460, "RGB")]
SIDES = [64, 224]


def load(path, mode, side):
    img = Image.open(path).convert(mode).resize((side, side), Image.BILINEAR)
    return np.asarray(img, np.float32) / 255


def time_case(files, mode, side, seconds):
    """Images per second over whole passes after one warm-up pass, and the mean value."""
    mean = sum(float(load(p, mode, side).mean()) for p in files) / len(files)
    start, images = time.perf_counter(), 0
    while images == 0 or time.perf_counter() - start < seconds:
        for p in files:
            load(p, mode, side)
        images += len(files)
    return images / (time.perf_counter() - start), mean


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dir", default="target/decode-bench")
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    print(f"{'case':<28} {'threads':>7} {'images/s':>10} {'mean':>9}")
    for name, w, h, mode in KINDS:
        files = sorted(pathlib.Path(args.dir, name).glob("*.png"))
        if not files:
            raise SystemExit(f"{args.dir}/{name}: no PNG files (run `gantry bench decode` first)")
        channels = len(mode)
        for side in SIDES:
            rate, mean = time_case(files, mode, side, args.seconds)
            case = f"{name}-{w}x{h}-to-{channels}x{side}x{side}"
            print(f"{case:<28} {1:>7} {rate:>10.1f} {mean:>9.6f}", flush=True)


if __name__ == "__main__":
    main()
