#!/usr/bin/python3
"""recsys.train()'s training step in torch, on the files build/training_step_bench writes.

    torch_training_reference.py train --dir DIR [--json OUT]
        The same model (torch.nn.LSTM(W, H, num_layers=L) + Linear(H + S, P) on [h_T, statics]),
        the same initial weights (DIR/weights.bin), the same batches in the same order
        (DIR/batches.bin, cycled), the same loss (binary cross-entropy on the logits, averaged
        over the entries whose mask is 1), torch.nn.utils.clip_grad_norm_ and torch.optim.Adam with
        the hyper-parameters of DIR/meta.json; one thread. Prints (and writes) one JSON object:
        examples_per_second and seconds (wall), examples_per_cpu_second and cpu_seconds (the
        process's CPU time), and the loss of every step.

    torch_training_reference.py gradients --dir DIR [--tolerance 1e-4]
        The gradients of the first batch at the initial weights, by torch autograd in float64,
        against DIR/gradients.bin (recsys's): per tensor, max |recsys - torch| / max |torch|.
        Exits 1 when a tensor is off by more than the tolerance.

    torch_training_reference.py compare --recsys JSON... --torch JSON... [--first 10] [--results FILE]
        The runs side by side: the median examples per CPU second and per wall second of each
        and their ratios, the largest relative
        difference of the loss over the first steps and over all steps, the largest run-to-run
        difference, and the final losses (mean of the last 10 steps as well, the curve's level
        without one batch's noise). --results appends name-value lines for bench/run_all.sh.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


class Recommender(torch.nn.Module):
    def __init__(self, W, H, S, P, layers):
        super().__init__()
        self.lstm = torch.nn.LSTM(W, H, num_layers=layers, bias=True)
        self.head = torch.nn.Linear(H + S, P)

    def forward(self, steps, statics):  # steps: T x B x W (time-major), statics: B x S
        _, (h_n, _) = self.lstm(steps)
        return self.head(torch.cat([h_n[-1], statics], dim=1))  # logits


def masked_bce(logits, labels, mask):
    per_entry = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return (per_entry * mask).sum() / mask.sum()


def read_meta(d):
    with open(os.path.join(d, "meta.json")) as f:
        return json.load(f)


def tensor_shapes(m):
    H, G = m["H"], 4 * m["H"]
    shapes = []
    for layer in range(m["layers"]):
        width = m["W"] if layer == 0 else H
        shapes += [(f"lstm.weight_ih_l{layer}", (G, width)), (f"lstm.weight_hh_l{layer}", (G, H)),
                   (f"lstm.bias_ih_l{layer}", (G,)), (f"lstm.bias_hh_l{layer}", (G,))]
    return shapes + [("head.weight", (m["P"], H + m["S"])), ("head.bias", (m["P"],))]


def read_tensors(path, m):
    flat = np.fromfile(path, dtype="<f4")
    out, at = {}, 0
    for name, shape in tensor_shapes(m):
        n = int(np.prod(shape))
        out[name] = torch.from_numpy(flat[at:at + n].reshape(shape).copy())
        at += n
    if at != flat.size:
        sys.exit(f"{path}: {flat.size} floats, expected {at}")
    return out


def read_batches(d, m):
    T, W, S, P, B = m["T"], m["W"], m["S"], m["P"], m["batch"]
    flat = np.fromfile(os.path.join(d, "batches.bin"), dtype="<f4")
    sizes = [T * B * W, B * S, B * P, B * P]
    per = sum(sizes)
    if flat.size != per * m["batches"]:
        sys.exit(f"batches.bin: {flat.size} floats, expected {per * m['batches']}")
    batches = []
    for k in range(m["batches"]):
        at = k * per
        parts = []
        for n in sizes:
            parts.append(flat[at:at + n].copy())
            at += n
        batches.append((torch.from_numpy(parts[0].reshape(T, B, W)), torch.from_numpy(parts[1].reshape(B, S)),
                        torch.from_numpy(parts[2].reshape(B, P)), torch.from_numpy(parts[3].reshape(B, P))))
    return batches


def build_model(d, m, dtype=torch.float32):
    model = Recommender(m["W"], m["H"], m["S"], m["P"], m["layers"])
    model.load_state_dict(read_tensors(os.path.join(d, "weights.bin"), m))
    return model.to(dtype)


def train(args):
    torch.set_num_threads(1)
    m = read_meta(args.dir)
    model = build_model(args.dir, m)
    batches = read_batches(args.dir, m)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=m["learning_rate"], betas=(m["beta1"], m["beta2"]), eps=m["epsilon"])
    losses = []
    t0, cpu0 = time.perf_counter(), time.process_time()
    for s in range(m["steps"]):
        steps, statics, labels, mask = batches[s % len(batches)]
        opt.zero_grad(set_to_none=True)
        loss = masked_bce(model(steps, statics), labels, mask)
        loss.backward()
        if m["clip_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(params, m["clip_norm"])
        opt.step()
        losses.append(loss.item())
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    examples = m["steps"] * m["batch"]
    result = {"implementation": "torch " + torch.__version__, "examples_per_second": examples / seconds,
              "seconds": seconds, "examples_per_cpu_second": examples / cpu_seconds, "cpu_seconds": cpu_seconds,
              "steps": m["steps"], "batch": m["batch"], "losses": losses}
    text = json.dumps(result)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text + "\n")


def gradients(args):
    torch.set_num_threads(1)
    m = read_meta(args.dir)
    model = build_model(args.dir, m, torch.float64)
    steps, statics, labels, mask = (x.double() for x in read_batches(args.dir, m)[0])
    masked_bce(model(steps, statics), labels, mask).backward()
    ours = read_tensors(os.path.join(args.dir, "gradients.bin"), m)
    worst = 0.0
    for name, p in model.named_parameters():
        ref = p.grad.numpy()
        got = ours[name].double().numpy()
        scale = max(float(np.abs(ref).max()), 1e-30)
        rel = float(np.abs(got - ref).max()) / scale
        worst = max(worst, rel)
        print(f"{name:22s} max|torch| {scale:.3e}  max|recsys - torch| / max|torch| {rel:.2e}")
    print(f"largest relative difference: {worst:.2e} (tolerance {args.tolerance:g})")
    sys.exit(0 if worst <= args.tolerance else 1)


def compare(args):
    def load(paths):
        runs = []
        for path in paths:
            with open(path) as f:
                runs.append(json.load(f))
        return runs

    ours, ref = load(args.recsys), load(args.torch)
    ours_eps = float(np.median([r["examples_per_second"] for r in ours]))
    ref_eps = float(np.median([r["examples_per_second"] for r in ref]))
    ours_cpu = float(np.median([r["examples_per_cpu_second"] for r in ours]))
    ref_cpu = float(np.median([r["examples_per_cpu_second"] for r in ref]))
    a, b = np.array(ours[0]["losses"]), np.array(ref[0]["losses"])
    if a.size != b.size:
        sys.exit(f"the runs took {a.size} and {b.size} steps")
    # Run-to-run differences of each implementation (both are deterministic on one thread).
    repeat = max([float(np.abs(np.array(r["losses"]) - a).max()) for r in ours] +
                 [float(np.abs(np.array(r["losses"]) - b).max()) for r in ref])
    rel = np.abs(a - b) / np.abs(b)
    k = min(args.first, a.size)
    tail = min(10, a.size)

    def rates(runs, key):
        return ", ".join(f"{r[key]:.0f}" for r in runs)

    print(f"examples per CPU second (median of {len(ours)} and {len(ref)} alternating runs): recsys {ours_cpu:.0f} "
          f"[{rates(ours, 'examples_per_cpu_second')}], {ref[0]['implementation']} {ref_cpu:.0f} "
          f"[{rates(ref, 'examples_per_cpu_second')}], ratio {ours_cpu / ref_cpu:.2f}")
    print(f"examples per wall second (the same runs): recsys {ours_eps:.0f} [{rates(ours, 'examples_per_second')}], "
          f"torch {ref_eps:.0f} [{rates(ref, 'examples_per_second')}], ratio {ours_eps / ref_eps:.2f}")
    print(f"loss, largest relative difference recsys vs torch: first {k} steps {rel[:k].max():.2e}, "
          f"all {a.size} steps {rel.max():.2e}; largest run-to-run difference {repeat:.1e}")
    print(f"final loss: recsys {a[-1]:.5f}, torch {b[-1]:.5f}; mean of the last {tail}: recsys {a[-tail:].mean():.5f}, "
          f"torch {b[-tail:].mean():.5f}; first loss {a[0]:.5f} / {b[0]:.5f}")
    every = max(1, a.size // 10)
    print("step  recsys    torch")
    for s in list(range(0, a.size, every)) + ([a.size - 1] if (a.size - 1) % every else []):
        print(f"{s + 1:4d}  {a[s]:.5f}  {b[s]:.5f}")
    if args.results:  # name value lines for bench/run_all.sh's table
        with open(args.results, "a") as f:
            f.write(f"train_recsys_eps {ours_eps:.1f}\n")
            f.write(f"train_torch_eps {ref_eps:.1f}\n")
            f.write(f"train_recsys_cpu_eps {ours_cpu:.1f}\n")
            f.write(f"train_torch_cpu_eps {ref_cpu:.1f}\n")
            f.write(f"train_loss_maxrel {rel.max():.2e}\n")
            f.write(f"train_loss_final {a[-tail:].mean():.5f} {b[-tail:].mean():.5f}\n")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train")
    t.add_argument("--dir", required=True)
    t.add_argument("--json")
    g = sub.add_parser("gradients")
    g.add_argument("--dir", required=True)
    g.add_argument("--tolerance", type=float, default=1e-4)
    c = sub.add_parser("compare")
    c.add_argument("--recsys", nargs="+", required=True, help="JSON of training_step_bench runs")
    c.add_argument("--torch", nargs="+", required=True, help="JSON of train runs")
    c.add_argument("--first", type=int, default=10)
    c.add_argument("--results")
    args = p.parse_args()
    {"train": train, "gradients": gradients, "compare": compare}[args.command](args)


if __name__ == "__main__":
    main()
