#!/usr/bin/python3
"""Parity of recsys with PyTorch.

    /usr/bin/python3 tests/integration/test_torch_parity.py --cli build/recsys_model_cli

(a) Forward: random torch.nn.LSTM + Linear models of several shapes are exported with
    tools/export_torch_model.py and scored by `recsys_model_cli score`; the scores must
    match torch's sigmoid(head(cat(h_T, statics))) in float32 within 1e-5.
(b) Gradients: `recsys_model_cli grad` (LstmTrainer::forward_backward) against torch
    autograd in float64 on the same float32 weights, loss = mean over mask == 1 entries of
    BCE(sigmoid(z), y); every gradient's max relative error must be below 1e-4.
(c) Database: when RECSYS_PG_DSN is set, a source table is created and filled, a model is
    registered with recsys.register_model and recsys.score_customer must match torch within
    1e-5. Skipped (with a message) when no database is given.

Prints one line per check and ends with exactly "N passed, M failed"; exits 1 on failure.
Needs torch and numpy, which are importable from /usr/bin/python3 (Debian packages).
"""

import argparse
import datetime
import os
import subprocess
import sys
import tempfile
import traceback

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import export_torch_model as exporter  # noqa: E402

torch.set_num_threads(1)

FORWARD_TOL = 1e-5
GRAD_TOL = 1e-4


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)


# ---------------------------------------------------------------------------------------
# Helpers


def make_spec(T, P, adds, dynamic, static, relation="public.parity"):
    """dynamic / static: lists of feature dicts (column, kind, ...) without the role."""
    features = [dict(f, role="dynamic") for f in dynamic] + [dict(f, role="static") for f in static]
    return {
        "source": {"relation": relation, "id_column": "customer_id", "month_column": "month"},
        "window_months": T,
        "include_product_adds": adds,
        "products": [f"p{i}" for i in range(P)],
        "features": features,
    }


def numeric(name, missing_indicator=False):
    return {"column": name, "kind": "numeric", "transform": "identity", "mean": 0.0, "stddev": 1.0,
            "clip_min": -1e30, "clip_max": 1e30, "missing_indicator": missing_indicator}


def categorical(name, n):
    return {"column": name, "kind": "categorical", "vocabulary": [f"v{i}" for i in range(n)]}


def build_modules(spec, hidden, layers, seed, batch_first=False):
    torch.manual_seed(seed)
    W, S, P = exporter.step_width(spec), exporter.static_width(spec), len(spec["products"])
    lstm = torch.nn.LSTM(W, hidden, num_layers=layers, bias=True, batch_first=batch_first)
    head = torch.nn.Linear(hidden + S, P)
    return lstm, head


def torch_scores(lstm, head, steps, statics, dtype=torch.float32):
    """steps: T x B x W (time-major), statics: B x S. Returns the logits and the scores."""
    x = steps.to(dtype)
    if lstm.batch_first:
        x = x.transpose(0, 1).contiguous()
    _, (h_n, _) = lstm(x)
    z = head(torch.cat([h_n[-1], statics.to(dtype)], dim=1))
    return z, torch.sigmoid(z)


def write_f32(path, tensor):
    tensor.detach().to(torch.float32).contiguous().numpy().astype("<f4").tofile(path)


def read_f32(path, shape):
    return torch.from_numpy(np.fromfile(path, dtype="<f4").reshape(shape).copy())


def run_cli(cli, *args):
    proc = subprocess.run([cli, *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{os.path.basename(cli)} {args[0]} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


# ---------------------------------------------------------------------------------------
# (a) Forward parity

FORWARD_SHAPES = [
    # T, P, adds, dynamic features, static features, hidden, layers, batch, batch_first
    dict(T=1, P=24, adds=False, dyn=[], sta=[], H=8, L=1, B=1, bf=False),
    dict(T=1, P=3, adds=True, dyn=[numeric("d0")], sta=[numeric("s0")], H=32, L=2, B=64, bf=True),
    dict(T=4, P=24, adds=True, dyn=[numeric("d0", True), categorical("c0", 4)], sta=[numeric("s0"), categorical("c1", 3)],
         H=32, L=2, B=64, bf=False),
    dict(T=4, P=3, adds=False, dyn=[numeric(f"d{i}") for i in range(5)], sta=[], H=8, L=3, B=1, bf=True),
    dict(T=16, P=24, adds=True, dyn=[numeric("d0"), numeric("d1", True)], sta=[numeric("s0", True)],
         H=128, L=1, B=64, bf=False),
    dict(T=16, P=3, adds=False, dyn=[categorical("c0", 10)], sta=[numeric(f"s{i}") for i in range(6)],
         H=128, L=3, B=64, bf=True),
    dict(T=16, P=24, adds=False, dyn=[numeric("d0")], sta=[], H=32, L=2, B=1, bf=False),
    dict(T=4, P=3, adds=True, dyn=[], sta=[numeric("s0"), numeric("s1")], H=128, L=2, B=1, bf=False),
    # Larger weights drive the gates into saturation and spread the scores over (0, 1).
    dict(T=16, P=24, adds=True, dyn=[numeric("d0")], sta=[numeric("s0")], H=32, L=2, B=64, bf=False, scale=4.0),
    dict(T=4, P=3, adds=False, dyn=[categorical("c0", 3)], sta=[], H=8, L=1, B=64, bf=True, scale=8.0),
]


def shape_name(s):
    return (f"T={s['T']} P={s['P']} adds={int(s['adds'])} H={s['H']} L={s['L']} B={s['B']} "
            f"batch_first={int(s['bf'])}" + (f" weight_scale={s['scale']:g}" if s.get("scale") else ""))


def forward_parity(cli, tmp, results):
    overall = 0.0
    for i, s in enumerate(FORWARD_SHAPES):
        spec = make_spec(s["T"], s["P"], s["adds"], s["dyn"], s["sta"])
        W, S = exporter.step_width(spec), exporter.static_width(spec)
        name = f"(a) forward {shape_name(s)} W={W} S={S}"
        try:
            lstm, head = build_modules(spec, s["H"], s["L"], seed=1000 + i, batch_first=s["bf"])
            if s.get("scale"):
                with torch.no_grad():
                    for p in list(lstm.parameters()) + list(head.parameters()):
                        p.mul_(s["scale"])
            gen = torch.Generator().manual_seed(2000 + i)
            steps = torch.randn(s["T"], s["B"], W, generator=gen)
            # Product flags and one-hot slots are 0/1 in practice; mix both kinds of input.
            steps[:, :, : s["P"]] = (steps[:, :, : s["P"]] > 0).float()
            statics = torch.randn(s["B"], S, generator=gen)
            model = os.path.join(tmp, f"fwd{i}.rsm")
            exporter.write_model(model, lstm, head, spec)
            write_f32(os.path.join(tmp, "steps.f32"), steps)
            write_f32(os.path.join(tmp, "statics.f32"), statics)
            out = os.path.join(tmp, "scores.f32")
            run_cli(cli, "score", model, os.path.join(tmp, "steps.f32"), os.path.join(tmp, "statics.f32"), s["B"], out)
            got = read_f32(out, (s["B"], s["P"]))
            with torch.no_grad():
                _, want = torch_scores(lstm, head, steps, statics)
            delta = float((got - want).abs().max())
            overall = max(overall, delta)
            results.check(name, delta < FORWARD_TOL, f"max |delta| = {delta:.3e}")
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            results.check(name, False, str(e))
    print(f"(a) forward parity: overall max |delta| = {overall:.3e} (tolerance {FORWARD_TOL:g})", flush=True)


# ---------------------------------------------------------------------------------------
# (b) Gradient parity

GRAD_SHAPES = [
    dict(T=3, P=5, adds=True, dyn=[numeric("d0", True)], sta=[numeric("s0"), numeric("s1")], H=6, L=1, B=7, mask="random"),
    dict(T=5, P=4, adds=False, dyn=[numeric("d0"), categorical("c0", 2)], sta=[], H=8, L=2, B=5, mask="random"),
    dict(T=2, P=3, adds=True, dyn=[], sta=[numeric("s0")], H=4, L=3, B=4, mask="random"),
    dict(T=2, P=3, adds=False, dyn=[numeric("d0")], sta=[numeric("s0")], H=4, L=2, B=3, mask="zero"),
]


def grad_parity(cli, tmp, results):
    overall = 0.0
    for i, s in enumerate(GRAD_SHAPES):
        spec = make_spec(s["T"], s["P"], s["adds"], s["dyn"], s["sta"])
        W, S, P, B = exporter.step_width(spec), exporter.static_width(spec), s["P"], s["B"]
        name = f"(b) gradients T={s['T']} P={P} H={s['H']} L={s['L']} B={B} W={W} S={S} mask={s['mask']}"
        try:
            lstm, head = build_modules(spec, s["H"], s["L"], seed=3000 + i)
            gen = torch.Generator().manual_seed(4000 + i)
            steps = torch.randn(s["T"], B, W, generator=gen)
            statics = torch.randn(B, S, generator=gen)
            labels = (torch.rand(B, P, generator=gen) < 0.3).float()
            if s["mask"] == "zero":
                mask = torch.zeros(B, P)
            else:
                mask = (torch.rand(B, P, generator=gen) < 0.7).float()
                mask[0, 0] = 1.0
            model = os.path.join(tmp, f"grad{i}.rsm")
            exporter.write_model(model, lstm, head, spec)
            files = []
            for fname, t in (("steps", steps), ("statics", statics), ("labels", labels), ("mask", mask)):
                files.append(os.path.join(tmp, f"g_{fname}.f32"))
                write_f32(files[-1], t)
            outdir = os.path.join(tmp, f"grad{i}")
            os.makedirs(outdir, exist_ok=True)
            run_cli(cli, "grad", model, *files, B, outdir)
            with open(os.path.join(outdir, "loss.txt")) as f:
                cli_loss = float(f.read().strip())

            # torch reference in float64 on the same float32 weights
            lstm64, head64 = lstm.double(), head.double()
            lstm64.zero_grad()
            head64.zero_grad()
            z, _ = torch_scores(lstm64, head64, steps, statics, dtype=torch.float64)
            y, m = labels.double(), mask.double()
            count = m.sum()
            bce = torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction="none")
            loss = (bce * m).sum() / count if count > 0 else (z * 0).sum()
            loss.backward()
            ref_loss = float(loss)
            loss_err = abs(cli_loss - ref_loss) / max(abs(ref_loss), 1e-12) if ref_loss != 0 else abs(cli_loss)

            worst, worst_name = 0.0, ""
            params = [(f"lstm.{n}", p) for n, p in lstm64.named_parameters()] + \
                     [(f"head.{n}", p) for n, p in head64.named_parameters()]
            for pname, p in params:
                want = p.grad.detach()
                got = read_f32(os.path.join(outdir, f"{pname}.f32"), tuple(want.shape)).double()
                scale = float(want.abs().max())
                if scale == 0.0:
                    err = float(got.abs().max())  # must be exactly zero too
                else:
                    denom = torch.clamp(want.abs(), min=1e-3 * scale)
                    err = float(((got - want).abs() / denom).max())
                if err > worst or not worst_name:
                    worst, worst_name = err, pname
            overall = max(overall, worst, loss_err)
            ok = worst < GRAD_TOL and loss_err < GRAD_TOL
            results.check(name, ok, f"loss {cli_loss:.6g} vs {ref_loss:.6g} (rel {loss_err:.2e}), "
                                    f"max relative gradient error {worst:.3e} ({worst_name})")
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            results.check(name, False, str(e))
    print(f"(b) gradient parity: overall max relative error = {overall:.3e} (tolerance {GRAD_TOL:g})", flush=True)


# ---------------------------------------------------------------------------------------
# (c) Database parity


def add_months(d, n):
    k = d.year * 12 + d.month - 1 + n
    return datetime.date(k // 12, k % 12 + 1, 1)


def make_customers(rng, T, P, D, S):
    """Rows (customer_id, month, d.., s.., p..) of a few customers, and for each customer
    (id, steps T x (P + D), statics S): the model inputs exactly as the feature encoder
    builds them for numeric identity features without missing indicators and without
    product adds. Customers have full windows, plus one with a longer history (only the
    last T months count) and, when T > 1, one with a shorter one (zero steps first).
    Values are float32-exact, so the database's double precision holds them unchanged."""
    lengths = [T, T, T, T + 2] + ([T - 1] if T > 1 else [])
    end = datetime.date(2016, 5, 1)
    rows, customers = [], []
    for k, length in enumerate(lengths):
        cid = 100 + 7 * k
        months = [add_months(end, -(length - 1 - j)) for j in range(length)]
        dyn = rng.standard_normal((length, D)).astype(np.float32)
        sta = rng.standard_normal((length, S)).astype(np.float32)
        prod = (rng.random((length, P)) < 0.4).astype(np.int16)
        for j in range(length):
            rows.append([cid, months[j]] + [float(v) for v in dyn[j]] + [float(v) for v in sta[j]] +
                        [int(v) for v in prod[j]])
        steps = np.zeros((T, P + D), dtype=np.float32)
        for j in range(length):
            age = length - 1 - j  # 0 = the customer's latest month, the window's last step
            if age < T:
                steps[T - 1 - age, :P] = prod[j]
                steps[T - 1 - age, P:] = dyn[j]
        customers.append((cid, steps, sta[-1].copy()))  # statics: the latest month
    return rows, customers


def database_parity(dsn, results):
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    schema = f"recsys_parity_{os.getpid()}"
    cases = [
        dict(T=4, P=5, D=3, S=2, H=16, L=2),
        dict(T=6, P=24, D=1, S=0, H=32, L=1),
        dict(T=1, P=3, D=2, S=3, H=8, L=3),
    ]
    overall = 0.0
    try:
        cur.execute(f"CREATE SCHEMA {schema}")
        for n, c in enumerate(cases):
            T, P, D, S = c["T"], c["P"], c["D"], c["S"]
            name = f"(c) database T={T} P={P} D={D} S={S} H={c['H']} L={c['L']}"
            try:
                table = f"{schema}.src{n}"
                dcols, scols, pcols = [f"d{i}" for i in range(D)], [f"s{i}" for i in range(S)], [f"p{i}" for i in range(P)]
                cols = ["customer_id bigint NOT NULL", "month date NOT NULL"] + \
                       [f"{x} double precision" for x in dcols + scols] + [f"{x} smallint NOT NULL" for x in pcols]
                cur.execute(f"CREATE TABLE {table} ({', '.join(cols)})")
                rows, customers = make_customers(np.random.default_rng(5000 + n), T, P, D, S)
                for row in rows:
                    cur.execute(f"INSERT INTO {table} VALUES ({', '.join(['%s'] * len(row))})", row)

                spec = make_spec(T, P, False, [numeric(x) for x in dcols], [numeric(x) for x in scols],
                                 relation=table)
                lstm, head = build_modules(spec, c["H"], c["L"], seed=6000 + n)
                data = exporter.export_model(lstm, head, spec)
                model_name = f"parity_{os.getpid()}_{n}"
                cur.execute("SELECT recsys.register_model(%s, %s::bytea)", (model_name, psycopg2.Binary(data)))
                version = cur.fetchone()[0]

                steps = torch.from_numpy(np.stack([s for _, s, _ in customers], axis=1))  # T x B x W
                statics = torch.from_numpy(np.stack([s for _, _, s in customers], axis=0).reshape(len(customers), S))
                with torch.no_grad():
                    _, want = torch_scores(lstm, head, steps, statics)
                worst = 0.0
                for b, (cid, _, _) in enumerate(customers):
                    cur.execute("SELECT recsys.score_customer(%s, model => %s, version => %s)",
                                (cid, model_name, version))
                    got = cur.fetchone()[0]
                    if got is None or len(got) != P:
                        raise AssertionError(f"customer {cid}: score_customer returned {got!r}, expected {P} scores")
                    worst = max(worst, float((torch.tensor(got, dtype=torch.float32) - want[b]).abs().max()))
                overall = max(overall, worst)
                results.check(name, worst < FORWARD_TOL,
                              f"model {model_name} v{version}, {len(customers)} customers, max |delta| = {worst:.3e}")
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                results.check(name, False, str(e))
    finally:
        try:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        finally:
            conn.close()
    print(f"(c) database parity: overall max |delta| = {overall:.3e} (tolerance {FORWARD_TOL:g})", flush=True)


# ---------------------------------------------------------------------------------------


def exporter_text_rule(results):
    """The exporter refuses strings recsys's parser would refuse (control characters, lone
    surrogates) with its own error, instead of writing a model the database rejects."""
    for what, bad in (("a tab in a vocabulary value", "a\tb"), ("a NUL in a vocabulary value", "a\x00b"),
                      ("a lone surrogate in a vocabulary value", "a\ud800b")):
        spec = make_spec(3, 2, False, [categorical("c", 2)], [])
        spec["features"][0]["vocabulary"][1] = bad
        lstm, head = build_modules(make_spec(3, 2, False, [categorical("c", 2)], []), 4, 1, seed=1)
        try:
            exporter.export_model(lstm, head, spec)
            results.check(f"exporter refuses {what}", False, "the model was written")
        except exporter.ExportError as e:
            results.check(f"exporter refuses {what}", "vocabulary[1]" in str(e), str(e))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", required=True, help="path to the recsys_model_cli program")
    args = parser.parse_args()
    cli = os.path.abspath(args.cli)
    results = Results()
    with tempfile.TemporaryDirectory(prefix="recsys_parity_") as tmp:
        if not os.access(cli, os.X_OK):
            results.check("recsys_model_cli is executable", False, cli)
        else:
            forward_parity(cli, tmp, results)
            grad_parity(cli, tmp, results)
    exporter_text_rule(results)
    dsn = os.environ.get("RECSYS_PG_DSN")
    if dsn:
        try:
            database_parity(dsn, results)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            results.check("(c) database parity", False, str(e))
    else:
        print("(c) database parity skipped: no database was given (set RECSYS_PG_DSN)", flush=True)
    print(f"{results.passed} passed, {results.failed} failed", flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
