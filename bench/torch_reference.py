#!/usr/bin/python3
"""The benchmark's reference model in PyTorch, and benchmark (c).

    torch_reference.py export --dsn DSN --spec-model NAME --out DIR
        Reads the feature spec of model NAME (made by recsys.untrained_model over the
        generated data) from recsys.models, builds torch.nn.LSTM(W, 128) + Linear(128 + S, P)
        with a fixed seed (and a second one with another seed, for the promote check),
        exports both with tools/export_torch_model.py to DIR/bench_v1.rsm and DIR/bench_v2.rsm,
        saves the state dicts (DIR/bench_v1.pt, DIR/bench_v2.pt) and the spec (DIR/spec.json),
        registers both as model 'bench' and promotes the first. Prints "v1 v2" (the versions).

    torch_reference.py bench --dir DIR [--seconds S] --json OUT
        Benchmark (c): torch forward on the same weights (DIR/bench_v1.pt) and the same kind of
        inputs as build/lstm_scoring_bench (0/1 flags, sparse adds, statics in [-1, 1]),
        batched, under torch.no_grad(): 1 thread batch 64 and 1024, 2 threads batch 1024
        (customers/s) and 1 thread batch-1 latency (us). Writes a JSON object.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import export_torch_model as exporter  # noqa: E402

SEED_V1 = 20240601
SEED_V2 = 20240602


class Recommender(torch.nn.Module):
    def __init__(self, W, H, S, P):
        super().__init__()
        self.lstm = torch.nn.LSTM(W, H, num_layers=1, bias=True)
        self.head = torch.nn.Linear(H + S, P)

    def forward(self, steps, statics):  # steps: T x B x W (time-major), statics: B x S
        _, (h_n, _) = self.lstm(steps)
        return torch.sigmoid(self.head(torch.cat([h_n[-1], statics], dim=1)))


def build(spec, hidden, seed):
    torch.manual_seed(seed)
    return Recommender(exporter.step_width(spec), hidden, exporter.static_width(spec), len(spec["products"])).eval()


def load(path):
    sd = torch.load(path, map_location="cpu")
    W = sd["lstm.weight_ih_l0"].shape[1]
    H = sd["lstm.weight_hh_l0"].shape[1]
    P, HS = sd["head.weight"].shape
    m = Recommender(W, H, HS - H, P)
    m.load_state_dict(sd)
    return m.eval()


def random_inputs(T, B, W, S, P, seed=1):
    """Like bench::random_inputs (same distributions, not the same generator)."""
    rng = np.random.default_rng(seed)
    steps = np.zeros((T, B, W), dtype=np.float32)
    steps[:, :, :P] = rng.random((T, B, P)) < 0.15
    steps[:, :, P:] = rng.random((T, B, W - P)) < 0.01
    statics = (rng.random((B, S)) * 2 - 1).astype(np.float32)
    return torch.from_numpy(steps), torch.from_numpy(statics)


def cmd_export(args):
    import psycopg2

    conn = psycopg2.connect(args.dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT feature_spec FROM recsys.models WHERE name = %s ORDER BY version DESC LIMIT 1",
                (args.spec_model,))
    spec = cur.fetchone()[0]
    hidden = int(spec.get("hidden", 128))
    # The derived fields are checked by the exporter against the torch modules; keep them.
    with open(os.path.join(args.out, "spec.json"), "w") as f:
        json.dump(spec, f, indent=1)
    versions = []
    for i, seed in enumerate((SEED_V1, SEED_V2), start=1):
        model = build(spec, hidden, seed)
        torch.save(model.state_dict(), os.path.join(args.out, f"bench_v{i}.pt"))
        path = os.path.join(args.out, f"bench_v{i}.rsm")
        exporter.write_model(path, model.lstm, model.head, spec)
        with open(path, "rb") as f:
            data = f.read()
        cur.execute("SELECT recsys.register_model('bench', %s, description => %s)",
                    (psycopg2.Binary(data), f"benchmark reference model, torch seed {seed}"))
        versions.append(cur.fetchone()[0])
    cur.execute("SELECT recsys.promote('bench', %s, force => true, reason => 'benchmark fixture')", (versions[0],))
    print(versions[0], versions[1])


def rate(fn, batch, seconds):
    fn()  # warm up
    n, t0 = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= seconds:
            return batch * n / el


def cmd_bench(args):
    model = load(os.path.join(args.dir, "bench_v1.pt"))
    T = json.load(open(os.path.join(args.dir, "spec.json")))["window_months"]
    W = model.lstm.input_size
    P = model.head.out_features
    S = model.head.in_features - model.lstm.hidden_size
    out = {"torch_version": torch.__version__, "default_threads": torch.get_num_threads()}
    steps, statics = random_inputs(T, 1024, W, S, P)
    with torch.no_grad():
        for threads, batch in ((1, 64), (1, 1024), (2, 1024)):
            torch.set_num_threads(threads)
            x, s = steps[:, :batch].contiguous(), statics[:batch].contiguous()
            out[f"c_t{threads}_b{batch}"] = rate(lambda: model(x, s), batch, args.seconds)
        torch.set_num_threads(1)
        x, s = steps[:, :1].contiguous(), statics[:1].contiguous()
        for _ in range(50):
            model(x, s)
        lat = []
        t_end = time.perf_counter() + args.seconds
        while time.perf_counter() < t_end:
            t0 = time.perf_counter()
            model(x, s)
            lat.append(time.perf_counter() - t0)
        lat.sort()
        out["c_b1_us_p50"] = lat[len(lat) // 2] * 1e6
        out["c_b1_us_min"] = lat[0] * 1e6
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export")
    e.add_argument("--dsn", required=True)
    e.add_argument("--spec-model", default="bench_spec")
    e.add_argument("--out", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--dir", required=True)
    b.add_argument("--seconds", type=float, default=3.0)
    b.add_argument("--json", required=True)
    args = ap.parse_args()
    {"export": cmd_export, "bench": cmd_bench}[args.cmd](args)


if __name__ == "__main__":
    main()
