#!/usr/bin/python3
"""Models from any LSTM layout and ONNX, in and out of recsys, against torch.

    RECSYS_PG_DSN="host=... port=... dbname=..." /usr/bin/python3 tests/integration/test_onnx_parity.py

(a) Spec errors: tools/export_torch_model.py refuses a step_input with an unknown block, a
    block given twice, a feature that is not in "features", a width that differs from the
    LSTM's input size, and conflicting include_product_adds / role; tools/onnx_to_recsys.py
    refuses what recsys cannot represent (bidirectional, clip, other activations, a non-zero
    initial state), each with a message naming the defect.
(b) Database, in: torch.nn.LSTM + Linear models whose step input is permuted, has no
    product flags, is narrower than the product count, mixes categorical and
    missing-indicator blocks (NULLs and unknown values in the data) or reads its history from
    a start month are exported with a step_input spec; models exported by torch.onnx
    (time-major and batch-first, Gemm and MatMul + Add heads) and a hand-built graph (LSTM
    layout=1, no statics) are converted with tools/onnx_to_recsys.py. Each is registered, and
    recsys.score_customer (and recsys.recommend_scores, for the cases in CASES) must match
    torch within 1e-5 for customers with full, longer and shorter histories.
(c) Database, out: every version registered in (b) is exported with tools/recsys_to_onnx.py
    (read from recsys.models), checked with onnx.checker, and evaluated with the numpy
    evaluator (tools/onnx_numpy_eval.py): its scores must match torch and
    recsys.score_customer within 1e-5, and converting the graph back must give the same
    model bytes.

(b) and (c) need RECSYS_PG_DSN (skipped with a message otherwise). Prints one line per
check, the max abs differences, and ends with exactly "N passed, M failed"; exits 1 on failure.
"""

import copy
import datetime
import io
import os
import sys
import traceback
import warnings

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
import export_torch_model as exporter  # noqa: E402
import onnx_numpy_eval  # noqa: E402
import onnx_to_recsys  # noqa: E402
import recsys_to_onnx  # noqa: E402

torch.set_num_threads(1)
warnings.filterwarnings("ignore")

TOL = 1e-5


class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.max_diff = {}

    def check(self, name, ok, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)

    def record(self, what, delta):
        self.max_diff[what] = max(self.max_diff.get(what, 0.0), delta)


def numeric(name):
    return {"column": name, "kind": "numeric", "missing_indicator": False}


def make_spec(T, P, D, S, step_input, relation="public.onnx_parity"):
    return {
        "source": {"relation": relation, "id_column": "customer_id", "month_column": "month"},
        "window_months": T,
        "products": [f"p{i}" for i in range(P)],
        "features": [numeric(f"d{i}") for i in range(D)] + [numeric(f"s{i}") for i in range(S)],
        "step_input": step_input,
    }


class Scorer(torch.nn.Module):
    """torch.nn.LSTM + a head over cat([h_T, statics]) + sigmoid; `matmul_head` writes the head
    as x @ W + b (exported as MatMul + Add) instead of a Linear (exported as Gemm)."""

    def __init__(self, W, H, L, S, P, batch_first=False, matmul_head=False, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.lstm = torch.nn.LSTM(W, H, num_layers=L, batch_first=batch_first)
        self.head = torch.nn.Linear(H + S, P)
        self.S = S
        self.matmul_head = matmul_head
        with torch.no_grad():  # spread the scores over (0, 1)
            for p in self.parameters():
                p.mul_(2.0)

    def forward(self, steps, statics):
        _, (h, _) = self.lstm(steps)
        x = torch.cat([h[-1], statics], dim=1) if self.S else h[-1]
        z = x @ self.head.weight.t() + self.head.bias if self.matmul_head else self.head(x)
        return torch.sigmoid(z)

    def scores(self, steps_tm, statics):
        """steps time-major T x B x W."""
        with torch.no_grad():
            x = torch.from_numpy(steps_tm)
            if self.lstm.batch_first:
                x = x.transpose(0, 1)
            return self(x, torch.from_numpy(statics)).numpy()

    def to_onnx(self, T, B):
        x = torch.zeros((B, T, self.lstm.input_size) if self.lstm.batch_first else (T, B, self.lstm.input_size))
        axes = {0: "batch", 1: "time"} if self.lstm.batch_first else {0: "time", 1: "batch"}
        buf = io.BytesIO()
        torch.onnx.export(self, (x, torch.zeros(B, self.S)), buf, input_names=["x", "s"], output_names=["y"],
                          opset_version=13, dynamic_axes={"x": axes, "s": {0: "batch"}})
        return onnx.load_from_string(buf.getvalue())


def handbuilt_graph(model):
    """An ONNX graph written by hand (opset 14), not by torch.onnx: LSTM nodes with layout=1
    (batch-first input and outputs), h_T = Squeeze(Y_h), a MatMul + Add head without statics.
    The gate rows are reordered here from torch's (i, f, g, o) to ONNX's (i, o, f, c)."""
    from onnx import TensorProto, helper, numpy_helper

    def iofc(a):
        i, f, g, o = np.split(a.detach().numpy(), 4)
        return np.concatenate([i, o, f, g])

    lstm, inits, nodes = model.lstm, [], []
    x = "x"
    for k in range(lstm.num_layers):
        w = [iofc(getattr(lstm, f"{n}_l{k}")) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        inits += [numpy_helper.from_array(w[0][None], f"W{k}"), numpy_helper.from_array(w[1][None], f"R{k}"),
                  numpy_helper.from_array(np.concatenate([w[2], w[3]])[None], f"B{k}")]
        nodes.append(helper.make_node("LSTM", [x, f"W{k}", f"R{k}", f"B{k}"], [f"Y{k}", f"Yh{k}"],
                                      hidden_size=lstm.hidden_size, layout=1))
        nodes.append(helper.make_node("Squeeze", [f"Y{k}", "axis2"], [f"X{k + 1}"]))  # [B, T, 1, H] -> [B, T, H]
        x = f"X{k + 1}"
    inits += [numpy_helper.from_array(np.array([2], np.int64), "axis2"),
              numpy_helper.from_array(np.array([1], np.int64), "axis1"),
              numpy_helper.from_array(model.head.weight.detach().numpy().T.copy(), "head_wt"),
              numpy_helper.from_array(model.head.bias.detach().numpy(), "head_b")]
    nodes += [helper.make_node("Squeeze", [f"Yh{lstm.num_layers - 1}", "axis1"], ["h"]),  # [B, 1, H] -> [B, H]
              helper.make_node("MatMul", ["h", "head_wt"], ["z0"]),
              helper.make_node("Add", ["z0", "head_b"], ["z"]),
              helper.make_node("Sigmoid", ["z"], ["y"])]
    graph = helper.make_graph(nodes, "handbuilt", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "t", lstm.input_size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", model.head.out_features])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


# ---------------------------------------------------------------------------------------
# (a) Errors


def expect_error(results, name, fn, *needles):
    try:
        fn()
        results.check(name, False, "no error")
    except exporter.ExportError as e:
        msg = str(e)
        results.check(name, all(n in msg for n in needles), msg)


def spec_errors(results):
    base = make_spec(3, 4, 2, 1, ["product_flags", {"feature": "d0"}])
    m = Scorer(5, 4, 1, 1, 4)

    def export(spec, model=m):
        return exporter.export_model(model.lstm, model.head, spec)

    expect_error(results, "(a) unknown block", lambda: export(dict(base, step_input=["product_flags", "product_holdings"])),
                 "step_input[1]", "unknown block", "product_holdings")
    expect_error(results, "(a) duplicate block",
                 lambda: export(dict(base, step_input=[{"feature": "d0"}, "product_flags", {"feature": "d0"}])),
                 "step_input[2]", "repeats")
    expect_error(results, "(a) block naming no feature",
                 lambda: export(dict(base, step_input=["product_flags", {"feature": "nope"}])),
                 "'nope'", "not in \"features\"")
    expect_error(results, "(a) width differs from the LSTM input size",
                 lambda: export(dict(base, step_input=["product_flags", "product_adds"])),
                 "input size is 5", "step width is 8", "product_flags 4 + product_adds 4")
    expect_error(results, "(a) default layout widened by missing_indicator and product adds",
                 lambda: export({k: v for k, v in base.items() if k != "step_input"} |
                                {"features": [{"column": "d0", "kind": "numeric", "role": "dynamic"}]}),
                 "input size is 5", "product_adds 4", "missing_indicator")
    expect_error(results, "(a) include_product_adds contradicts step_input",
                 lambda: export(dict(base, include_product_adds=True)), "include_product_adds", "product_adds")
    spec = copy.deepcopy(base)
    spec["features"][2]["role"] = "dynamic"
    expect_error(results, "(a) role contradicts step_input", lambda: export(spec), 'feature "s0"', "role")

    # ONNX graphs recsys cannot represent.
    ok_spec = make_spec(3, 4, 1, 1, ["product_flags", {"feature": "d0"}])

    def onnx_with(edit):
        g = Scorer(5, 4, 1, 1, 4, seed=7).to_onnx(3, 2)
        edit(g)
        return lambda: onnx_to_recsys.convert(g, ok_spec)

    def add_attr(**kw):
        def edit(g):
            node = next(n for n in g.graph.node if n.op_type == "LSTM")
            node.attribute.extend([onnx.helper.make_attribute(k, v) for k, v in kw.items()])
        return edit

    expect_error(results, "(a) ONNX clip refused", onnx_with(add_attr(clip=3.0)), "clip")
    expect_error(results, "(a) ONNX activations refused",
                 onnx_with(add_attr(activations=["Sigmoid", "Relu", "Tanh"])), "activations", "Relu")

    class Bidirectional(Scorer):
        def __init__(self):
            super().__init__(5, 4, 1, 1, 4)
            self.lstm = torch.nn.LSTM(5, 4, bidirectional=True)

    expect_error(results, "(a) ONNX bidirectional refused",
                 lambda: onnx_to_recsys.convert(Bidirectional().to_onnx(3, 2), ok_spec), "direction")

    class LearnedState(Scorer):
        def __init__(self):
            super().__init__(5, 4, 1, 1, 4)

        def forward(self, steps, statics):
            h0 = steps[:1, :, :4] * 0.0 + 0.5  # a state of 0.5 for every customer
            _, (h, _) = self.lstm(steps, (h0, torch.zeros_like(h0)))
            return torch.sigmoid(self.head(torch.cat([h[-1], statics], dim=1)))

    expect_error(results, "(a) ONNX non-zero initial state refused",
                 lambda: onnx_to_recsys.convert(LearnedState().to_onnx(3, 2), ok_spec), "differ", "initial state")


# ---------------------------------------------------------------------------------------
# Data: a source table and the inputs torch sees for each customer


def add_months(d, n):
    k = d.year * 12 + d.month - 1 + n
    return datetime.date(k // 12, k % 12 + 1, 1)


def make_customers(rng, T, P, D, S):
    """Rows (customer_id, month, d.., s.., p..) and, per customer, its raw arrays. Customers
    have full windows, one a longer history (only the last T months count) and one a
    shorter one (zero steps first). Values are float32-exact."""
    lengths = [T, T, T, T + 2, max(T - 2, 1)]
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
        customers.append(dict(id=cid, dyn=dyn, sta=sta, prod=prod))
    return rows, customers


def torch_inputs(customers, spec, T):
    """The step input in the spec's layout (T x B x W, time-major) and the statics (B x S),
    encoded as recsys encodes them (numeric identity features, no missing indicators)."""
    norm = exporter.normalize_spec(spec)
    layout = norm.get("step_input")
    steps = np.zeros((T, len(customers), exporter.step_width(norm)), np.float32)
    for b, c in enumerate(customers):
        length = len(c["prod"])
        for j in range(length):
            slot = T - 1 - (length - 1 - j)  # the latest month is the last step
            if slot < 0:
                continue
            adds = (c["prod"][j] & ~c["prod"][j - 1]) if j > 0 else np.zeros_like(c["prod"][j])
            parts = []
            for block in layout:
                if block == "product_flags":
                    parts.append(c["prod"][j])
                elif block == "product_adds":
                    parts.append(adds)
                else:
                    parts.append(c["dyn"][j, [int(block[1][1:])]])
            steps[slot, b] = np.concatenate(parts).astype(np.float32)
    statics = np.stack([c["sta"][-1] for c in customers]).astype(np.float32)
    return steps, statics


def recsys_layout(steps, spec):
    """Places a step input laid out as the spec says into recsys's layout."""
    norm = exporter.normalize_spec(spec)
    out = np.zeros(steps.shape[:2] + (exporter.recsys_step_width(norm),), np.float32)
    for _, offset, width, recsys_offset in exporter.step_layout(norm):
        out[:, :, recsys_offset:recsys_offset + width] = steps[:, :, offset:offset + width]
    return out


# ---------------------------------------------------------------------------------------
# (b) and (c)

CASES = [
    # name, T, P, D, S, step_input, hidden, layers, how
    ("torch, step input permuted", 4, 5, 2, 2,
     [{"feature": "d1"}, "product_adds", {"feature": "d0"}, "product_flags"], 8, 2, "torch"),
    ("torch, no product flags", 3, 6, 2, 1, [{"feature": "d1"}, {"feature": "d0"}], 6, 1, "torch"),
    ("torch, fewer inputs than products", 5, 24, 1, 0, [{"feature": "d0"}], 16, 1, "torch"),
    ("torch.onnx, time-major, Gemm head", 4, 5, 2, 2,
     ["product_adds", {"feature": "d0"}, "product_flags", {"feature": "d1"}], 8, 2, "onnx"),
    ("torch.onnx, batch-first, MatMul + Add head", 3, 6, 1, 1, [{"feature": "d0"}, "product_flags"], 5, 3,
     "onnx-batch-first-matmul"),
    ("hand-built ONNX, LSTM layout=1, MatMul + Add head, no statics", 4, 4, 1, 0,
     ["product_flags", {"feature": "d0"}, "product_adds"], 6, 2, "onnx-handbuilt"),
]


def database_parity(dsn, results):
    import psycopg2

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    schema = f"recsys_onnx_parity_{os.getpid()}"
    try:
        cur.execute(f"CREATE SCHEMA {schema}")
        for n, (label, T, P, D, S, step_input, H, L, how) in enumerate(CASES):
            name = f"(b) {label} T={T} P={P} H={H} L={L}"
            try:
                table = f"{schema}.src{n}"
                cols = (["customer_id bigint NOT NULL", "month date NOT NULL"] +
                        [f"d{i} double precision" for i in range(D)] + [f"s{i} double precision" for i in range(S)] +
                        [f"p{i} smallint NOT NULL" for i in range(P)])
                cur.execute(f"CREATE TABLE {table} ({', '.join(cols)})")
                rows, customers = make_customers(np.random.default_rng(700 + n), T, P, D, S)
                for row in rows:
                    cur.execute(f"INSERT INTO {table} VALUES ({', '.join(['%s'] * len(row))})", row)
                spec = make_spec(T, P, D, S, step_input, relation=table)
                W = exporter.step_width(spec)
                model = Scorer(W, H, L, S, P, batch_first="batch-first" in how, matmul_head="matmul" in how,
                               seed=900 + n)
                if how == "torch":
                    data = exporter.export_model(model.lstm, model.head, spec)
                else:
                    graph = handbuilt_graph(model) if how == "onnx-handbuilt" else model.to_onnx(T, 2)
                    heads = {node.op_type for node in graph.graph.node} & {"Gemm", "MatMul"}
                    data, report = onnx_to_recsys.convert(graph, spec)
                    results.record("ONNX import: graph vs converted model (numpy, random inputs)",
                                   report["verify_max_abs_diff"])
                    name += f" head={'+'.join(sorted(heads))}"
                model_name = f"onnx_parity_{os.getpid()}_{n}"
                cur.execute("SELECT recsys.register_model(%s, %s::bytea)", (model_name, psycopg2.Binary(data)))
                version = cur.fetchone()[0]

                steps, statics = torch_inputs(customers, spec, T)
                want = model.scores(steps, statics)
                worst, worst_rank = 0.0, 0.0
                for b, c in enumerate(customers):
                    cur.execute("SELECT recsys.score_customer(%s, model => %s, version => %s)", (c["id"], model_name, version))
                    got = np.array(cur.fetchone()[0], np.float64)
                    worst = max(worst, float(np.abs(got - want[b]).max()))
                    cur.execute("SELECT product, score FROM recsys.recommend_scores(%s, k => %s, model => %s, "
                                "version => %s)", (c["id"], P, model_name, version))
                    ranked = cur.fetchall()
                    held = {f"p{i}" for i in range(P) if c["prod"][-1][i]}
                    if {p for p, _ in ranked} != {f"p{i}" for i in range(P)} - held:
                        raise AssertionError(f"customer {c['id']}: recommend_scores returned {[p for p, _ in ranked]}, "
                                             f"expected every product not held ({sorted(held)} held)")
                    for p, score in ranked:
                        worst_rank = max(worst_rank, abs(score - float(want[b][int(p[1:])])))
                kind = ("torch (step_input spec)" if how == "torch" else
                        "ONNX (hand-built)" if how == "onnx-handbuilt" else "ONNX (torch.onnx export)")
                results.record(f"import {kind} vs torch: score_customer", worst)
                results.record(f"import {kind} vs torch: recommend_scores", worst_rank)
                results.check(name, worst <= TOL and worst_rank <= TOL,
                              f"v{version}, {len(customers)} customers, max |delta| score_customer {worst:.3e}, "
                              f"recommend_scores {worst_rank:.3e}")

                export_check(results, dsn, cur, label, model_name, version, data, model, customers, steps, statics,
                             spec, want)
            except Exception as e:  # noqa: BLE001
                traceback.print_exc()
                results.check(name, False, str(e))
    finally:
        try:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            cur.execute("DELETE FROM recsys.models WHERE name LIKE %s", (f"onnx_parity_{os.getpid()}_%",))
        finally:
            conn.close()


def mixed_blocks_parity(dsn, results):
    """Blocks wider than one column in a permuted layout: a categorical feature (one-hot with a
    slot for unknown or NULL) first, the product flags, then a numeric feature with its missing
    indicator; a static numeric feature with a missing indicator. NULLs and unknown values
    included."""
    import psycopg2

    T, P, H, L = 4, 5, 7, 1
    vocabulary = ["a", "b", "c"]
    spec = make_spec(T, P, 0, 0, [{"feature": "c0"}, "product_flags", {"feature": "d0"}])
    spec["features"] = [{"column": "c0", "kind": "categorical", "vocabulary": vocabulary},
                        {"column": "d0", "kind": "numeric", "missing_indicator": True, "mean": 0.5, "stddev": 2.0},
                        {"column": "s0", "kind": "numeric", "missing_indicator": True}]
    name = f"(b) torch, categorical and missing-indicator blocks permuted T={T} P={P} H={H} L={L}"
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    schema = f"recsys_onnx_mixed_{os.getpid()}"
    model_name = f"onnx_parity_{os.getpid()}_mixed"
    try:
        cur.execute(f"CREATE SCHEMA {schema}")
        table = f"{schema}.src"
        spec["source"]["relation"] = table
        cur.execute(f"CREATE TABLE {table} (customer_id bigint NOT NULL, month date NOT NULL, c0 text, "
                    f"d0 double precision, s0 double precision, {', '.join(f'p{i} smallint NOT NULL' for i in range(P))})")
        W = exporter.step_width(spec)
        model = Scorer(W, H, L, 2, P, seed=5151)
        data = exporter.export_model(model.lstm, model.head, spec)
        cur.execute("SELECT recsys.register_model(%s, %s::bytea)", (model_name, psycopg2.Binary(data)))
        version = cur.fetchone()[0]
        rng = np.random.default_rng(5252)
        customers = 6
        steps = np.zeros((T, customers, W), np.float32)
        statics = np.zeros((customers, 2), np.float32)
        for b in range(customers):
            n = T if b % 2 == 0 else T - 1
            for j in range(n):
                month = add_months(datetime.date(2016, 5, 1), -(n - 1 - j))
                c0 = [None, "a", "b", "c", "zz"][int(rng.integers(5))]
                d0 = None if rng.random() < 0.3 else float(np.float32(rng.standard_normal()))
                s0 = None if b == 1 else float(np.float32(rng.standard_normal()))
                prod = (rng.random(P) < 0.4).astype(np.int16)
                cur.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, %s, {', '.join(['%s'] * P)})",
                            [b + 1, month, c0, d0, s0] + [int(v) for v in prod])
                onehot = np.zeros(len(vocabulary) + 1, np.float32)
                onehot[vocabulary.index(c0) if c0 in vocabulary else len(vocabulary)] = 1.0
                d0_enc = [0.0, 1.0] if d0 is None else [(d0 - 0.5) / 2.0, 0.0]
                steps[T - n + j, b] = np.concatenate([onehot, prod, np.array(d0_enc, np.float32)])
                statics[b] = [0.0, 1.0] if s0 is None else [s0, 0.0]
        want = model.scores(steps, statics)
        worst = 0.0
        for b in range(customers):
            cur.execute("SELECT recsys.score_customer(%s, model => %s, version => %s)", (b + 1, model_name, version))
            worst = max(worst, float(np.abs(np.array(cur.fetchone()[0], np.float64) - want[b]).max()))
        results.record("import torch (step_input spec) vs torch: score_customer", worst)
        results.check(name, worst <= TOL, f"v{version}, {customers} customers, max |delta| {worst:.3e}")
        graph = recsys_to_onnx.build_graph(recsys_to_onnx.fetch_model(dsn, model_name, version)[0])
        scores = onnx_numpy_eval.run(graph, {"steps": recsys_layout(steps, spec), "statics": statics})["scores"]
        vs_torch = float(np.abs(scores.astype(np.float64) - want).max())
        results.record("export ONNX (numpy evaluator) vs torch", vs_torch)
        results.check("(c) export to ONNX: categorical and missing-indicator blocks", vs_torch <= TOL,
                      f"max |delta| vs torch {vs_torch:.3e}")
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        results.check(name, False, str(e))
    finally:
        try:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            cur.execute("DELETE FROM recsys.models WHERE name = %s", (model_name,))
        finally:
            conn.close()


def from_start_parity(dsn, results):
    """A from_start_month model (step t is month start + t; customers whose history ends
    earlier have fewer steps): in through a step_input spec, out to ONNX with sequence_lens."""
    import psycopg2

    T, P, H, L = 5, 4, 6, 2
    start = datetime.date(2016, 1, 1)
    # (first month, last month) per customer: from before the start, ending early, starting
    # late, a single month, exactly the window.
    spans = [(datetime.date(2015, 11, 1), datetime.date(2016, 5, 1)), (start, datetime.date(2016, 3, 1)),
             (datetime.date(2016, 3, 1), datetime.date(2016, 5, 1)), (datetime.date(2016, 2, 1),) * 2,
             (start, datetime.date(2016, 5, 1))]
    name = f"(b) torch, from_start_month, step input permuted T={T} P={P} H={H} L={L}"
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    schema = f"recsys_onnx_start_{os.getpid()}"
    model_name = f"onnx_parity_{os.getpid()}_start"
    try:
        cur.execute(f"CREATE SCHEMA {schema}")
        table = f"{schema}.src"
        cur.execute(f"CREATE TABLE {table} (customer_id bigint NOT NULL, month date NOT NULL, d0 double precision, "
                    f"s0 double precision, {', '.join(f'p{i} smallint NOT NULL' for i in range(P))})")
        rng = np.random.default_rng(4242)
        spec = make_spec(T, P, 1, 1, ["product_adds", {"feature": "d0"}, "product_flags"], relation=table)
        spec["history"] = {"mode": "from_start_month", "start_month": "2016-01"}
        W = exporter.step_width(spec)
        model = Scorer(W, H, L, 1, P, seed=4343)
        data = exporter.export_model(model.lstm, model.head, spec)
        cur.execute("SELECT recsys.register_model(%s, %s::bytea)", (model_name, psycopg2.Binary(data)))
        version = cur.fetchone()[0]
        steps = np.zeros((T, len(spans), W), np.float32)
        statics = np.zeros((len(spans), 1), np.float32)
        lengths = np.zeros(len(spans), np.int32)
        want = np.zeros((len(spans), P))
        for b, (first, last) in enumerate(spans):
            n = (last.year - first.year) * 12 + last.month - first.month + 1
            months = [add_months(first, j) for j in range(n)]
            prod = (rng.random((n, P)) < 0.4).astype(np.int16)
            dyn = rng.standard_normal((n, 2)).astype(np.float32)
            for j, m in enumerate(months):
                cur.execute(f"INSERT INTO {table} VALUES (%s, %s, %s, %s, {', '.join(['%s'] * P)})",
                            [b + 1, m, float(dyn[j, 0]), float(dyn[j, 1])] + [int(v) for v in prod[j]])
                t = (m.year - start.year) * 12 + m.month - start.month
                if t < 0:
                    continue
                # "Added" needs the month before inside the sequence: 0 at the start month.
                adds = prod[j] & ~prod[j - 1] if (j > 0 and t > 0) else np.zeros(P, np.int16)
                steps[t, b] = np.concatenate([adds, dyn[j, :1], prod[j]])
            statics[b, 0] = dyn[-1, 1]
            lengths[b] = (last.year - start.year) * 12 + last.month - start.month + 1
            want[b] = model.scores(np.ascontiguousarray(steps[:lengths[b], b:b + 1]), statics[b:b + 1])[0]
        worst = 0.0
        for b in range(len(spans)):
            cur.execute("SELECT recsys.score_customer(%s, model => %s, version => %s)", (b + 1, model_name, version))
            worst = max(worst, float(np.abs(np.array(cur.fetchone()[0], np.float64) - want[b]).max()))
        results.record("import torch (step_input spec) vs torch: score_customer", worst)
        results.check(name, worst <= TOL, f"v{version}, lengths {lengths.tolist()}, max |delta| {worst:.3e}")

        graph = recsys_to_onnx.build_graph(recsys_to_onnx.fetch_model(dsn, model_name, version)[0])
        scores = onnx_numpy_eval.run(graph, {"steps": recsys_layout(steps, spec), "statics": statics,
                                             "sequence_lens": lengths})["scores"].astype(np.float64)
        vs_torch = float(np.abs(scores - want).max())
        results.record("export ONNX (numpy evaluator) vs torch", vs_torch)
        results.check("(c) export to ONNX: from_start_month with sequence_lens", vs_torch <= TOL,
                      f"max |delta| vs torch {vs_torch:.3e}")
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        results.check(name, False, str(e))
    finally:
        try:
            cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            cur.execute("DELETE FROM recsys.models WHERE name = %s", (model_name,))
        finally:
            conn.close()


def export_check(results, dsn, cur, label, model_name, version, data, model, customers, steps, statics, spec, want):
    name = f"(c) export to ONNX: {label}"
    try:
        stored, got_version = recsys_to_onnx.fetch_model(dsn, model_name, version)
        if stored != data or got_version != version:
            raise AssertionError("recsys.models does not hold the registered bytes")
        graph = recsys_to_onnx.build_graph(stored, name=f"{model_name}_v{version}")
        onnx.checker.check_model(graph)
        ops = sorted({node.op_type for node in graph.graph.node})
        feeds = {"steps": recsys_layout(steps, spec)}
        if statics.shape[1]:
            feeds["statics"] = statics
        scores = onnx_numpy_eval.run(graph, feeds)["scores"].astype(np.float64)
        vs_torch = float(np.abs(scores - want).max())
        vs_db = 0.0
        for b, c in enumerate(customers):
            cur.execute("SELECT recsys.score_customer(%s, model => %s, version => %s)", (c["id"], model_name, version))
            vs_db = max(vs_db, float(np.abs(np.array(cur.fetchone()[0], np.float64) - scores[b]).max()))
        back, _ = onnx_to_recsys.convert(onnx.load_from_string(graph.SerializeToString()))
        results.record("export ONNX (numpy evaluator) vs torch", vs_torch)
        results.record("export ONNX (numpy evaluator) vs score_customer", vs_db)
        results.check(name, vs_torch <= TOL and vs_db <= TOL and back == stored,
                      f"ops {','.join(ops)}; max |delta| vs torch {vs_torch:.3e}, vs score_customer {vs_db:.3e}; "
                      f"converted back: {'same bytes' if back == stored else 'DIFFERENT bytes'}")
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        results.check(name, False, str(e))


def main():
    results = Results()
    try:
        spec_errors(results)
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        results.check("(a) errors", False, str(e))
    dsn = os.environ.get("RECSYS_PG_DSN")
    if dsn:
        try:
            database_parity(dsn, results)
            from_start_parity(dsn, results)
            mixed_blocks_parity(dsn, results)
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            results.check("(b) database parity", False, str(e))
    else:
        print("(b), (c) database parity skipped: no database was given (set RECSYS_PG_DSN)", flush=True)
    for what, delta in sorted(results.max_diff.items()):
        print(f"max |delta| {what}: {delta:.3e} (tolerance {TOL:g})", flush=True)
    print(f"{results.passed} passed, {results.failed} failed", flush=True)
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
