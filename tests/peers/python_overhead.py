"""What the Python bridge costs: the same PyTorch training step timed as a plain script
and through gantry (`gantry bench train` on the .py plugin), in interleaved rounds.

    target/py-venv/bin/python tests/peers/python_overhead.py [--rounds 5] [--steps 20]

Both sides run plugins/python/examples/torch_conv_ae.py's Model at 64x64 gray, batch 32,
on random data, after the same warm-up, with torch's default threads. The script side
calls Model.train_step directly with a numpy batch; gantry's side goes through the C ABI
and the bridge (one copy of each batch into numpy). Prints one table: per round, each
side's images per second, and the median ratio gantry / script (1.0 = no overhead).
"""

import argparse
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(ROOT, "plugins", "python", "examples")


def load_model_class():
    path = os.path.join(EXAMPLES, "torch_conv_ae.py")
    spec = importlib.util.spec_from_file_location("torch_conv_ae", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def script_rate(steps, warmup, size, batch):
    module = load_model_class()
    params = dict(module.GANTRY_PLUGIN["params"])
    setup = {"channels": 1, "height": size, "width": size, "num_classes": 1, "seed": 0,
             "lr": None, "total_steps": None, "device": "cpu"}
    model = module.Model(params, setup)
    rng = np.random.default_rng(0)
    images = rng.random((batch, 1, size, size), dtype=np.float32)
    labels = np.zeros(batch, dtype=np.uint32)
    for _ in range(warmup):
        model.train_step(images.copy(), labels)
    start = time.perf_counter()
    for _ in range(steps):
        # A fresh array per step, as the bridge hands the model one.
        model.train_step(images.copy(), labels)
    return steps * batch / (time.perf_counter() - start)


def gantry_rate(gantry, steps, warmup, size, batch):
    env = dict(os.environ, VIRTUAL_ENV=sys.prefix)
    out = subprocess.run(
        [gantry, "bench", "train", "--plugin", "torch-conv-ae", "--plugins", EXAMPLES,
         "--size", str(size), "--batch", str(batch), "--steps", str(steps),
         "--warmup", str(warmup), "--channels", "1"],
        env=env, capture_output=True, text=True, check=True)
    m = re.search(r"([0-9.]+)\s*img/s", out.stdout + out.stderr)
    if not m:
        sys.exit(f"no img/s in gantry's output:\n{out.stdout}{out.stderr}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--gantry", default=os.path.join(ROOT, "target", "release", "gantry"))
    a = ap.parse_args()
    ratios = []
    print(f"{'round':<6} {'script img/s':>13} {'gantry img/s':>13} {'ratio':>7}")
    for r in range(a.rounds):
        # Alternate which side goes first, so drift in the machine's load splits evenly.
        if r % 2 == 0:
            s = script_rate(a.steps, a.warmup, a.size, a.batch)
            g = gantry_rate(a.gantry, a.steps, a.warmup, a.size, a.batch)
        else:
            g = gantry_rate(a.gantry, a.steps, a.warmup, a.size, a.batch)
            s = script_rate(a.steps, a.warmup, a.size, a.batch)
        ratios.append(g / s)
        print(f"{r:<6} {s:>13.1f} {g:>13.1f} {g / s:>7.3f}")
    print(f"median ratio gantry / script: {statistics.median(ratios):.3f} "
          f"(target >= 0.95: the bridge adds <= 5%)")


if __name__ == "__main__":
    main()
