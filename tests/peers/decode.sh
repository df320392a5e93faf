#!/usr/bin/env bash
# gantry's read + shape against Pillow's open + convert + resize + float32, on the same
# generated PNGs (gray 256x256, RGB 700x460; to 64x64 and 224x224), in alternating rounds
# so drifting machine load hits both alike. Prints every round's rates, then the medians
# and their ratios. Usage, from anywhere:
#   tests/peers/decode.sh [--rounds 3] [--seconds 1] [--threads 2] [--dir target/decode-bench]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=3 seconds=1 threads=2 dir=target/decode-bench
while [ $# -gt 0 ]; do
    case $1 in
    --rounds) rounds=$2 ;;
    --seconds) seconds=$2 ;;
    --threads) threads=$2 ;;
    --dir) dir=$2 ;;
    *) echo "usage: $0 [--rounds N] [--seconds S] [--threads T] [--dir DIR]" >&2; exit 2 ;;
    esac
    shift 2
done

# The PyTorch peer's venv has NumPy already; otherwise a small one of our own.
venv=target/peers-venv
[ -x "$venv/bin/python" ] || venv=target/pillow-venv
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import PIL, numpy" 2>/dev/null; then
    "$venv/bin/pip" install -q pillow numpy
fi
py=$venv/bin/python

cargo build --release -q -p gantry
gantry=target/release/gantry
# Generates the files if missing (and warms the page cache); untimed.
"$gantry" bench decode --dir "$dir" --threads 1 --seconds 0 >/dev/null

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for round in $(seq "$rounds"); do
    echo "== round $round: gantry"
    "$gantry" bench decode --dir "$dir" --threads "$threads" --seconds "$seconds" | tee "$out/gantry.$round"
    echo "== round $round: pillow ($("$py" -c 'import PIL; print(PIL.__version__)'))"
    "$py" tests/peers/decode_pillow.py --dir "$dir" --seconds "$seconds" | tee "$out/pillow.$round"
done

"$py" - "$out" "$rounds" <<'PY'
import statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
rates, means = {}, {}
for who in ("gantry", "pillow"):
    for r in range(1, rounds + 1):
        for line in open(f"{out}/{who}.{r}").read().splitlines()[1:]:
            case, threads, rate, mean = line.split()
            rates.setdefault((case, who, int(threads)), []).append(float(rate))
            means[(case, who)] = float(mean)
cases = list(dict.fromkeys(k[0] for k in rates))
par = max(t for (_, who, t) in rates if who == "gantry")
print(f"\n== medians of {rounds} rounds (images/s); ratio = gantry / pillow")
print(f"{'case':<28} {'pillow':>8} {'gantry 1t':>10} {'ratio':>6} {f'gantry {par}t':>10} {'ratio':>6} {'mean diff':>10}")
for case in cases:
    p = statistics.median(rates[(case, "pillow", 1)])
    g1 = statistics.median(rates[(case, "gantry", 1)])
    gp = statistics.median(rates.get((case, "gantry", par), [float("nan")]))
    diff = means[(case, "gantry")] - means[(case, "pillow")]
    print(f"{case:<28} {p:>8.1f} {g1:>10.1f} {g1 / p:>6.2f} {gp:>10.1f} {gp / p:>6.2f} {diff:>10.1e}")
PY
