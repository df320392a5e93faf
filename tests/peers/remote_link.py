#!/usr/bin/env python3
"""The remote link's costs over a real ssh, measured at the protocol: one `gantry agent`
started through `ssh`, as the dashboard starts it.

    python3 tests/peers/remote_link.py --ssh "ssh -F cfg" --host gantry-test \
        --gantry target/release/gantry --template runs/some-run --runs 1000

Prints: time until 1,000 runs are synced (all their files received), bytes over the
wire per appended scalar row against the row's size, the latency from appending a row
remotely to its bytes arriving here (p50/p95 over N rows), and idle traffic in B/s.
The bytes are what ssh delivers on stdout (the protocol's own), not the encrypted
packets. The remote root is on this machine: run over ssh to localhost."""
import argparse, os, shlex, shutil, statistics, struct, subprocess, sys, tempfile, threading, time

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ssh", default="ssh")
    ap.add_argument("--host", required=True)
    ap.add_argument("--gantry", required=True)
    ap.add_argument("--template", required=True, help="a finished run folder to copy")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--idle", type=float, default=30.0)
    a = ap.parse_args()
    root = tempfile.mkdtemp(prefix="remote-bench-")
    ignore = shutil.ignore_patterns("checkpoints")
    for i in range(a.runs):
        shutil.copytree(a.template, os.path.join(root, f"run-{i:04d}"), ignore=ignore)
    cmd = shlex.split(a.ssh) + ["-T", "-o", "BatchMode=yes", a.host,
                                f"{a.gantry} agent --proto 1 --root {shlex.quote(root)}"]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    # Have { root: 0, files: [] } then Start, postcard-encoded, length-prefixed.
    for body in (b"\x00\x00\x00", b"\x01"):
        p.stdin.write(struct.pack("<I", len(body)) + body)
    p.stdin.flush()
    out = p.stdout
    line = b""
    while b"GANTRY-AGENT" not in line:
        line = out.readline()
    total = [len(line)]
    frames = []  # (arrival time, body)
    lock = threading.Condition()
    def reader():
        while True:
            head = out.read(4)
            if len(head) < 4:
                return
            n = struct.unpack("<I", head)[0]
            body = out.read(n)
            with lock:
                total[0] += 4 + n
                frames.append((time.monotonic(), body))
                lock.notify_all()
    threading.Thread(target=reader, daemon=True).start()
    synced = listed = None
    scanned, statuses = 0, 0
    while synced is None:
        with lock:
            lock.wait(0.5)
            for t, b in frames[scanned:]:
                # ToClient::Open (variant 0) of a run's status.ron: the list is complete
                # once the last of them (and the Put after it) arrived.
                if b[:1] == b"\x00" and b.endswith(b"/status.ron"):
                    statuses += 1
                    if statuses == a.runs and listed is None:
                        listed = t
                if b == b"\x04":  # ToClient::Synced is variant 4
                    synced = t
            scanned = len(frames)
            # Keep only the counts: 1,000 runs are tens of thousands of frames.
            frames.clear()
            scanned = 0
    print(f"runs listed        {a.runs} runs' run.ron and status.ron in {listed - t0:.2f} s")
    print(f"runs synced        every file of {a.runs} runs in {synced - t0:.2f} s ({total[0] / 1e6:.1f} MB)")
    scal = os.path.join(root, "run-0000", "scalars.csv")
    lat, sizes = [], []
    before = total[0]
    for step in range(a.rows):
        row = f"{1.7e9 + step:.3f},{100000 + step},7,train/loss,{1.0 / (step + 1):.6f}\n".encode()
        sizes.append(len(row))
        with lock:
            seen = len(frames)
        w = time.monotonic()
        with open(scal, "ab") as f:
            f.write(row)
        while True:
            with lock:
                hit = next((t for t, b in frames[seen:] if row in b), None)
                if hit is None:
                    lock.wait(1.0)
            if hit is not None:
                lat.append(hit - w)
                break
            if time.monotonic() - w > 5:
                sys.exit("a row did not arrive within 5 s")
        time.sleep(0.05)
    per_row = (total[0] - before) / a.rows
    lat.sort()
    print(f"bytes per row      {per_row:.1f} B on the wire for a {statistics.mean(sizes):.1f}-byte row ({per_row / statistics.mean(sizes):.2f}x)")
    print(f"append latency     p50 {lat[len(lat) // 2] * 1000:.1f} ms, p95 {lat[int(len(lat) * 0.95)] * 1000:.1f} ms ({a.rows} rows)")
    before = total[0]
    time.sleep(a.idle)
    print(f"idle traffic       {(total[0] - before) / a.idle:.1f} B/s over {a.idle:.0f} s")
    p.kill()
    shutil.rmtree(root)

main()
