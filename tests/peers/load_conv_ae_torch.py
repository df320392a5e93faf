"""Loads a gantry conv-ae checkpoint into the PyTorch reference module and checks it.

The module is `ConvAE` of conv_ae_torch.py beside this file (the PyTorch twin of
plugins/conv-ae: same layers, same initialisation scheme), built with the run's
hyper-parameters: channels and latent from run.ron's params (checked against the
checkpoint's shapes), the LeakyReLU slope (`leaky_slope`, or ReLU for
`activation: "relu"`) and the input size from the inputs. gantry's `model.safetensors` is
read with `safetensors.torch.load_file`, renamed to the module's state_dict keys
(`state_dict_from_gantry` below, the table the README gives) and loaded with
`strict=True`; the module then reconstructs the inputs, which are compared with gantry's.

Needs torch (PyPI's wheel pulls several GB of CUDA libraries, so CI runs the numpy
version, numpy_conv_ae.py, instead); run by hand:

    GANTRY_WEIGHTS_KEEP=/tmp/interop cargo test --release -p gantry-e2e --test weights_interop
    python3 tests/peers/load_conv_ae_torch.py /tmp/interop/runs/conv-ae-interop \
        --inputs /tmp/interop/interop/inputs.npy \
        --expected /tmp/interop/interop/reconstructions.npy

or on any conv-ae run with inputs of your own, and `--save model.pt` to keep the loaded
module's state_dict. Prints one line with the max abs difference; exits 1 above `--tol`.
"""

import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn

sys.dont_write_bytecode = True  # no __pycache__ in the source tree for the imports below
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conv_ae_torch import ConvAE  # noqa: E402
from numpy_conv_ae import run_params, slope_of  # noqa: E402


def state_dict_from_gantry(tensors, depth):
    """gantry conv-ae tensor names -> `ConvAE` state_dict keys.

    ConvAE.encoder is `[Conv2d, LeakyReLU, MaxPool2d] * depth`, so level i's conv is
    `encoder.{3i}`; ConvAE.decoder is `[Upsample, Conv2d, LeakyReLU] * (depth - 1)` then
    `[Upsample, Conv2d, Sigmoid]`, so `dec.{i}.conv` is `decoder.{3i+1}` and `out.conv` is
    `decoder.{3(depth-1)+1}`. Shapes are PyTorch's already (conv [out, in, kh, kw], linear
    [out, in]); nothing is transposed.
    """
    rename = {"bottleneck.down": "down", "bottleneck.up": "up", "out.conv": f"decoder.{3 * (depth - 1) + 1}"}
    for i in range(depth):
        rename[f"enc.{i}.conv"] = f"encoder.{3 * i}"
    for i in range(depth - 1):
        rename[f"dec.{i}.conv"] = f"decoder.{3 * i + 1}"
    out = {}
    for name, t in tensors.items():
        stem, _, leaf = name.rpartition(".")
        if stem not in rename:
            raise KeyError(f"{name}: not a conv-ae tensor")
        out[f"{rename[stem]}.{leaf}"] = t
    return out


def build(params, channels_in, height, width, slope):
    """The reference module for these hyper-parameters and this input size."""
    depth = len(params["channels"])
    model = ConvAE(channels_in, height, tuple(params["channels"]), params["latent"])
    if height != width:
        # ConvAE assumes square inputs; gantry's bottom is (C, H >> depth, W >> depth).
        c = params["channels"][-1]
        model.bottom = (c, height >> depth, width >> depth)
        flat = c * model.bottom[1] * model.bottom[2]
        model.down = nn.Linear(flat, params["latent"])
        model.up = nn.Linear(params["latent"], flat)
    for m in model.modules():
        if isinstance(m, nn.LeakyReLU):
            m.negative_slope = slope
    return model


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="the gantry run folder (run.ron, checkpoints/)")
    p.add_argument("--checkpoint", default="last", help="checkpoints/<this> (default last)")
    p.add_argument("--inputs", required=True, help=".npy float32 [N, C, H, W]")
    p.add_argument("--expected", required=True, help=".npy gantry's reconstructions of the inputs")
    p.add_argument("--tol", type=float, default=1e-5, help="max abs difference allowed")
    p.add_argument("--save", help="also write the loaded module's state_dict (torch.save) here")
    a = p.parse_args()
    from safetensors.torch import load_file

    path = os.path.join(a.run, "checkpoints", a.checkpoint, "model.safetensors")
    tensors = load_file(path)
    params = run_params(a.run)
    x = torch.from_numpy(np.load(a.inputs))
    expected = torch.from_numpy(np.load(a.expected))
    if x.dim() != 4 or expected.shape != x.shape:
        sys.exit(f"inputs {tuple(x.shape)} and expected {tuple(expected.shape)} must be the same [N, C, H, W]")
    _, c, h, w = x.shape
    slope = slope_of(params)
    model = build(params, c, h, w, slope)
    model.load_state_dict(state_dict_from_gantry(tensors, len(params["channels"])), strict=True)
    model.eval()
    with torch.no_grad():
        y = model(x)
    diff = (y.double() - expected.double()).abs().max().item()
    ok = diff <= a.tol
    if a.save:
        torch.save(model.state_dict(), a.save)
    print(
        f"conv-ae in PyTorch {torch.__version__} from {path}: {x.shape[0]} images {c}x{h}x{w}, "
        f"channels {list(params['channels'])}, latent {params['latent']}, slope {slope}: "
        f"max abs diff {diff:.3e} (tolerance {a.tol:.0e}): {'ok' if ok else 'FAIL'}"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
