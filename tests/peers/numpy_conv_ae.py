"""conv-ae's forward pass in plain numpy over a gantry checkpoint, checked against gantry.

Reads `model.safetensors` of a gantry conv-ae run with PyPI's `safetensors`
(`safetensors.numpy.load_file`), the architecture from the tensor shapes and the activation
from the run's `run.ron` params, reconstructs the given inputs and compares them with the
reconstructions gantry computed. Needs only `numpy` and `safetensors`, so CI runs it
(tests/tests/weights_interop.rs writes the inputs and gantry's reconstructions as .npy);
`load_conv_ae_torch.py` beside it does the same through the PyTorch reference module.

    python3 tests/peers/numpy_conv_ae.py RUN_DIR --inputs inputs.npy \
        --expected reconstructions.npy [--checkpoint last] [--tol 1e-5]

The network, as plugins/conv-ae builds it (names are the safetensors tensor names):
    for i in levels: h = maxpool2x2(act(conv3x3_pad1(h; enc.{i}.conv)))
    z = bottleneck.down(flatten(h))                       # [N, latent]
    h = reshape(bottleneck.up(z), [N, C_last, H >> d, W >> d])
    for i in levels - 1: h = act(conv3x3_pad1(upsample2x_nearest(h); dec.{i}.conv))
    y = sigmoid(conv3x3_pad1(upsample2x_nearest(h); out.conv))
with act = LeakyReLU(leaky_slope) (ReLU for `activation: "relu"`). Conv weights are
[out, in, kh, kw] cross-correlation kernels and linear weights [out, in], as in PyTorch.

Prints one line with the max abs difference; exits 1 when it exceeds the tolerance.
"""

import argparse
import json
import os
import re
import sys

import numpy as np

# plugins/conv-ae's ConvAeConfig::default(), for params a run's config left out.
DEFAULTS = {
    "channels": [32, 64, 128],
    "latent": 64,
    "activation": "leaky_relu",
    "leaky_slope": 0.2,
}


def _balanced(text, start):
    """The `{...}` block opening at `text[start]`, skipping braces inside strings."""
    depth, i, in_str = 0, start, False
    while i < len(text):
        ch = text[i]
        if in_str:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
        i += 1
    raise ValueError("unbalanced braces")


def run_params(run_dir):
    """The run's plugin params (`spec.params` of run.ron) over conv-ae's defaults.

    run.ron is RON; its `params` map holds JSON-like values (numbers, strings, lists,
    booleans), so the block is read as JSON once RON's trailing commas are dropped.
    """
    path = os.path.join(run_dir, "run.ron")
    with open(path) as f:
        text = f.read()
    # The record of the plugin that ran: `plugin: (path: "...", name: "conv-ae", ...)`.
    m = re.search(r"\bplugin:\s*\(\s*path:[^\n]*\n\s*name:\s*\"([^\"]*)\"", text)
    if m and m.group(1) != "conv-ae":
        sys.exit(f"{path}: the run's plugin is {m.group(1)!r}, not conv-ae")
    m = re.search(r"\bparams:\s*\{", text)
    params = {}
    if m:
        block = _balanced(text, m.end() - 1)
        try:
            params = json.loads(re.sub(r",(\s*[}\]])", r"\1", block))
        except json.JSONDecodeError as e:
            sys.exit(f"{path}: cannot read params {block!r}: {e}")
    return {**DEFAULTS, **params}


def slope_of(params):
    """LeakyReLU's negative slope; 0 for ReLU (as conv-ae's `ConvAeNet::slope`)."""
    if params["activation"] == "relu":
        return 0.0
    if params["activation"] != "leaky_relu":
        sys.exit(f"activation {params['activation']!r} is not one of leaky_relu, relu")
    return float(params["leaky_slope"])


def architecture(weights, params, shape):
    """Levels, latent and bottom shape from the tensors, checked against params and the
    input shape `[N, C, H, W]`."""
    enc = []
    while f"enc.{len(enc)}.conv.weight" in weights:
        enc.append(weights[f"enc.{len(enc)}.conv.weight"].shape[0])
    depth = len(enc)
    if depth == 0:
        sys.exit("no enc.0.conv.weight: not a conv-ae checkpoint")
    latent, flat = weights["bottleneck.down.weight"].shape
    if list(params["channels"]) != enc or params["latent"] != latent:
        sys.exit(
            f"run.ron params (channels {params['channels']}, latent {params['latent']}) do "
            f"not match the checkpoint (channels {enc}, latent {latent})"
        )
    _, c, h, w = shape
    if weights["enc.0.conv.weight"].shape[1] != c:
        sys.exit(f"inputs have {c} channels, enc.0.conv.weight expects {weights['enc.0.conv.weight'].shape[1]}")
    bottom = (enc[-1], h >> depth, w >> depth)
    if bottom[0] * bottom[1] * bottom[2] != flat:
        sys.exit(f"inputs {h}x{w} give a bottom {bottom}, bottleneck.down expects {flat} features")
    return depth, bottom


def conv3x3(x, w, b):
    """Stride-1 cross-correlation with zero padding (k - 1) / 2, as PyTorch's Conv2d."""
    k = w.shape[2]
    p = (k - 1) // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))
    return np.einsum("nchwij,ocij->nohw", win, w, optimize=True) + b[None, :, None, None]


def leaky(x, slope):
    return np.where(x > 0, x, slope * x)


def max_pool2x2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def upsample2x(x):
    return x.repeat(2, axis=2).repeat(2, axis=3)


def forward(weights, x, depth, bottom, slope):
    """conv-ae's reconstruction of `x` `[N, C, H, W]`, in float64."""
    t = {k: v.astype(np.float64) for k, v in weights.items()}
    h = x.astype(np.float64)
    for i in range(depth):
        h = max_pool2x2(leaky(conv3x3(h, t[f"enc.{i}.conv.weight"], t[f"enc.{i}.conv.bias"]), slope))
    z = h.reshape(h.shape[0], -1) @ t["bottleneck.down.weight"].T + t["bottleneck.down.bias"]
    h = (z @ t["bottleneck.up.weight"].T + t["bottleneck.up.bias"]).reshape(-1, *bottom)
    for i in range(depth - 1):
        h = leaky(conv3x3(upsample2x(h), t[f"dec.{i}.conv.weight"], t[f"dec.{i}.conv.bias"]), slope)
    out = conv3x3(upsample2x(h), t["out.conv.weight"], t["out.conv.bias"])
    return 1.0 / (1.0 + np.exp(-out))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", help="the gantry run folder (run.ron, checkpoints/)")
    p.add_argument("--checkpoint", default="last", help="checkpoints/<this> (default last)")
    p.add_argument("--inputs", required=True, help=".npy float32 [N, C, H, W] in the model's input range")
    p.add_argument("--expected", required=True, help=".npy gantry's reconstructions of the inputs")
    p.add_argument("--tol", type=float, default=1e-5, help="max abs difference allowed")
    a = p.parse_args()
    from safetensors.numpy import load_file

    model = os.path.join(a.run, "checkpoints", a.checkpoint, "model.safetensors")
    weights = load_file(model)
    params = run_params(a.run)
    x = np.load(a.inputs)
    expected = np.load(a.expected)
    if x.ndim != 4 or expected.shape != x.shape:
        sys.exit(f"inputs {x.shape} and expected {expected.shape} must be the same [N, C, H, W]")
    depth, bottom = architecture(weights, params, x.shape)
    slope = slope_of(params)
    y = forward(weights, x, depth, bottom, slope)
    diff = float(np.max(np.abs(y - expected.astype(np.float64))))
    ok = diff <= a.tol
    n, c, h, w = x.shape
    print(
        f"conv-ae numpy forward of {model}: {n} images {c}x{h}x{w}, channels "
        f"{list(params['channels'])}, latent {params['latent']}, slope {slope}: "
        f"max abs diff {diff:.3e} (tolerance {a.tol:.0e}): {'ok' if ok else 'FAIL'}"
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
