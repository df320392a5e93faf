"""Lists the tensors of safetensors files (name, dtype, shape), standard library only.

The format is an 8-byte little-endian header length, a JSON header naming each tensor's
dtype, shape and byte range, then the raw data; nothing else is needed to list it.
Used to generate the per-plugin tensor tables in the README from real gantry checkpoints:

    python3 tests/peers/safetensors_names.py runs/<run>/checkpoints/last/model.safetensors
    python3 tests/peers/safetensors_names.py --markdown runs/<run>/checkpoints/last/*.safetensors
"""

import argparse
import json
import struct


def header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        return json.loads(f.read(n))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--markdown", action="store_true", help="a markdown table per file")
    a = p.parse_args()
    for path in a.files:
        h = header(path)
        h.pop("__metadata__", None)
        if a.markdown:
            print(f"`{path}`\n\n| tensor | dtype | shape |\n|---|---|---|")
        else:
            print(path)
        for name in sorted(h):
            dtype, shape = h[name]["dtype"], h[name]["shape"]
            if a.markdown:
                print(f"| `{name}` | {dtype} | {shape} |")
            else:
                print(f"  {name:40} {dtype:4} {shape}")
        print()


if __name__ == "__main__":
    main()
