#!/usr/bin/python3
"""Training parity of recsys with PyTorch: the same Adam steps give the same loss curve.

    /usr/bin/python3 tests/integration/test_training_torch_parity.py [--bench build/training_step_bench]

build/training_step_bench builds train_model()'s mini-batches from generated customers, writes
them with the initial weights, and trains; bench/torch_training_reference.py runs the same
steps in torch (torch.nn.LSTM + Linear, masked BCE, clip_grad_norm_, torch.optim.Adam). Checks,
on small models (one and two layers, clipping active or not):
  - the gradients of the first batch equal torch autograd's (float64) within 1e-4 relative;
  - every step's loss equals torch's within 1e-4 relative, over 30 steps (a wrong Adam bias
    correction, clipping or moment update shows within a few steps);
  - the loss falls (the steps train something).
test_torch_parity.py checks the forward pass and one gradient on random inputs; this one checks
the optimizer and the training examples as the training loop builds them.

Prints one line per check and ends with exactly "N passed, M failed"; exits 1 on failure.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REFERENCE = os.path.join(ROOT, "bench", "torch_training_reference.py")

CASES = [
    # name, bench arguments
    ("one layer, clipping active", ["--layers", "1", "--hidden", "16", "--clip", "0.05"]),
    ("two layers, clipping off", ["--layers", "2", "--hidden", "12", "--clip", "0"]),
    ("one layer, recsys.train() defaults but hidden 32", ["--hidden", "32"]),
]
STEPS = 30


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bench", default=os.path.join(ROOT, "build", "training_step_bench"))
    args = p.parse_args()
    passed = failed = 0

    def check(name, ok, detail):
        nonlocal passed, failed
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
        if ok:
            passed += 1
        else:
            failed += 1

    for name, extra in CASES:
        with tempfile.TemporaryDirectory() as d:
            run = subprocess.run([args.bench, "--out", d, "--customers", "3000", "--steps", str(STEPS), "--batch", "64"]
                                 + extra, capture_output=True, text=True)
            if run.returncode != 0:
                check(name, False, f"training_step_bench failed: {run.stderr.strip()}")
                continue
            ours = json.loads(run.stdout)
            grads = subprocess.run([sys.executable, REFERENCE, "gradients", "--dir", d, "--tolerance", "1e-4"],
                                   capture_output=True, text=True)
            check(f"{name}: gradients of the first batch", grads.returncode == 0,
                  (grads.stdout.strip().splitlines() or [grads.stderr.strip()])[-1])
            tj = os.path.join(d, "torch.json")
            ref = subprocess.run([sys.executable, REFERENCE, "train", "--dir", d, "--json", tj],
                                 capture_output=True, text=True)
            if ref.returncode != 0:
                check(f"{name}: loss curve", False, f"torch run failed: {ref.stderr.strip()}")
                continue
            with open(tj) as f:
                theirs = json.load(f)
            a, b = ours["losses"], theirs["losses"]
            worst = max(abs(x - y) / abs(y) for x, y in zip(a, b))
            check(f"{name}: loss curve over {STEPS} steps", len(a) == len(b) == STEPS and worst <= 1e-4,
                  f"largest relative difference {worst:.2e}, first loss {a[0]:.5f} / {b[0]:.5f}, "
                  f"last {a[-1]:.5f} / {b[-1]:.5f}")
            head, tail = sum(a[:5]) / 5, sum(a[-5:]) / 5
            check(f"{name}: the loss falls", tail < head, f"mean of the first 5 steps {head:.4f}, last 5 {tail:.4f}")

    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
