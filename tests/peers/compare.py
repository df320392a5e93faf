"""Times gantry's conv-ae plugin and its PyTorch twin alternately, on the same random-data
workload and thread count, and prints img/s per round, the ratio, and its median.

Run through ./run.sh (which sets up the venv and builds gantry). Every configuration of
the performance issue: 64x64 and 128x128 gray and 64x64 RGB, batch 32, training; plus
evaluation at 64x64 gray. Also prints each workload's FLOPs, the achieved GFLOP/s, and
the fp32 GEMM ceilings measured through candle's gemm path and through PyTorch's BLAS.
"""

import argparse
import re
import statistics
import subprocess
import sys

CONFIGS = [
    ("train", 64, 1),
    ("train", 128, 1),
    ("train", 64, 3),
    ("eval", 64, 1),
]


def forward_flops(size, c, channels=(32, 64, 128), latent=64):
    """Multiply-adds x2 of one image's forward pass through the reference conv-ae."""
    f, cin, s = 0, c, size
    for ch in channels:
        f += 2 * cin * ch * 9 * s * s
        cin, s = ch, s // 2
    f += 2 * (cin * s * s) * latent * 2
    for ch in reversed(channels[:-1]):
        s *= 2
        f += 2 * cin * ch * 9 * s * s
        cin = ch
    s *= 2
    f += 2 * cin * c * 9 * s * s
    return f


def rate(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"([0-9.]+) img/s", out.stdout)
    if out.returncode != 0 or not m:
        sys.exit(f"failed: {' '.join(cmd)}\n{out.stdout}\n{out.stderr}")
    rss = re.search(r"peak RSS ([0-9.]+) MB", out.stdout)
    return float(m.group(1)), float(rss.group(1)) if rss else float("nan")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--gantry", default="target/release/gantry")
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--gemm-ceiling", type=float, default=None, help="GFLOP/s of candle's gemm path")
    a = p.parse_args()
    twin = __file__.replace("compare.py", "conv_ae_torch.py")
    print(f"{'workload':<22} {'round':>5} {'gantry img/s':>13} {'pytorch img/s':>14} {'ratio':>6}")
    summary = []
    for kind, size, ch in CONFIGS:
        common = ["--size", str(size), "--channels", str(ch), "--batch", "32", "--steps", str(a.steps), "--threads", str(a.threads)]
        extra = ["--eval"] if kind == "eval" else []
        ratios, g_rates, t_rates, g_rss, t_rss = [], [], [], [], []
        for r in range(a.rounds):
            runs = [("g", [a.gantry, "bench", "train", *common, *extra]), ("t", [a.python, twin, *common, *extra])]
            if r % 2 == 1:
                runs.reverse()  # alternate who goes first
            got = {k: rate(cmd) for k, cmd in runs}
            (g, grss), (t, trss) = got["g"], got["t"]
            ratios.append(g / t)
            g_rates.append(g)
            t_rates.append(t)
            g_rss.append(grss)
            t_rss.append(trss)
            name = f"{kind} {ch}x{size}x{size}"
            print(f"{name:<22} {r + 1:>5} {g:>13.1f} {t:>14.1f} {g / t:>6.2f}")
        per_img = forward_flops(size, ch) * (3 if kind == "train" else 1)
        summary.append((f"{kind} {ch}x{size}x{size}", statistics.median(ratios), statistics.median(g_rates),
                        statistics.median(t_rates), per_img, max(g_rss), max(t_rss)))
    print()
    print(f"{'workload':<22} {'median ratio':>12} {'GFLOP/img':>10} {'gantry GFLOP/s':>15} {'pytorch GFLOP/s':>16} {'RSS MB g/t':>12}")
    for name, ratio, g, t, f, gr, tr in summary:
        line = f"{name:<22} {ratio:>12.2f} {f / 1e9:>10.3f} {g * f / 1e9:>15.1f} {t * f / 1e9:>16.1f} {gr:>5.0f}/{tr:<5.0f}"
        if a.gemm_ceiling:
            line += f"  ({100 * g * f / 1e9 / a.gemm_ceiling:.0f}% of candle-gemm ceiling)"
        print(line)


if __name__ == "__main__":
    main()
