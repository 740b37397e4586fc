#!/usr/bin/python3
"""Export a recsys model (a registered version, or a model file) to ONNX.

    /usr/bin/python3 tools/recsys_to_onnx.py --dsn "dbname=shop" --model default --version 3 --out m.onnx
    /usr/bin/python3 tools/recsys_to_onnx.py --model-file model.rsm --out m.onnx

so that the same model runs outside the database (an application, an edge device) with the
same scores. The graph (opset 13, ONNX IR of onnx 1.12) uses only LSTM, Squeeze, Concat,
Gemm and Sigmoid:

    inputs   steps          float [T, batch, step_width]   time-major, encoded as recsys does
             statics        float [batch, static_width]    (only when static_width > 0)
             sequence_lens  int32 [batch]                  (only for from_start_month models:
                                                            each customer's number of steps)
    output   scores         float [batch, products]        sigmoid of the head, product order
                                                           as in the spec

One LSTM node per layer (W [1, 4H, in], R [1, 4H, H], B [1, 8H], gate order i, o, f, c as the
ONNX spec requires; recsys stores torch's i, f, g, o), a Squeeze between layers, Squeeze of the
last Y_h, Concat with the statics, Gemm (transB=1) and Sigmoid. The inputs must be encoded the
way recsys encodes them (docs/model-format.md): step layout [product flags, product adds when
include_product_adds, dynamic features], numeric features standardized, categorical one-hot
with a last slot for unknown/NULL; in a sliding-window model, months without a snapshot
(before the first one, or gaps) are all-zero steps and the last step is the latest month.
The model's spec (recsys.model_spec() JSON) is stored in the graph's metadata as
"recsys_spec", so tools/onnx_to_recsys.py can read the graph back without --spec.

The graph passes onnx.checker. It is tested with the numpy evaluator in
tools/onnx_numpy_eval.py against torch and against recsys.score_customer /
recsys.recommend_scores (tests/integration/test_onnx_parity.py); onnxruntime is not
packaged in Debian and was not available to test with. Any runtime implementing opset 13's
LSTM (forward, default activations), Squeeze, Concat, Gemm and Sigmoid should run it.

--dsn reads recsys.models (the caller needs SELECT on it: recsys_admin, or the owner).
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_torch_model as exporter  # noqa: E402

OPSET = 13


def torch_to_onnx_gates(a, H):
    """Reorders 4H gate rows from torch's order (i, f, g, o) into ONNX's (i, o, f, c)."""
    i, f, g, o = (a[k * H:(k + 1) * H] for k in range(4))
    return np.concatenate([i, o, f, g], axis=0)


def build_graph(data, name="recsys_model"):
    """The ONNX ModelProto for recsys model bytes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    spec, layers, head_w, head_b = exporter.read_model(data)
    H = layers[0][1].shape[1]
    W, S, P = exporter.recsys_step_width(spec), exporter.static_width(spec), len(spec["products"])
    T = spec["window_months"]
    from_start = spec["history"]["mode"] == "from_start_month"
    inits, nodes = [], []

    def const(value, cname):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), cname))
        return cname

    inputs = [helper.make_tensor_value_info("steps", TensorProto.FLOAT, [T, "batch", W])]
    if S:
        inputs.append(helper.make_tensor_value_info("statics", TensorProto.FLOAT, ["batch", S]))
    if from_start:
        inputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, ["batch"]))
    x = "steps"
    axis1, axis0 = const(np.array([1], np.int64), "axis_1"), const(np.array([0], np.int64), "axis_0")
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
        Wk = const(torch_to_onnx_gates(w_ih, H)[None].astype(np.float32), f"lstm_{k}_W")
        Rk = const(torch_to_onnx_gates(w_hh, H)[None].astype(np.float32), f"lstm_{k}_R")
        Bk = const(np.concatenate([torch_to_onnx_gates(b_ih, H), torch_to_onnx_gates(b_hh, H)])[None]
                   .astype(np.float32), f"lstm_{k}_B")
        lstm_inputs = [x, Wk, Rk, Bk] + (["sequence_lens"] if from_start else [])
        nodes.append(helper.make_node("LSTM", lstm_inputs, [f"lstm_{k}_Y", f"lstm_{k}_Y_h"],
                                      name=f"lstm_{k}", hidden_size=int(H), direction="forward"))
        if k + 1 < len(layers):
            nodes.append(helper.make_node("Squeeze", [f"lstm_{k}_Y", axis1], [f"lstm_{k}_out"], name=f"squeeze_{k}"))
            x = f"lstm_{k}_out"
    last = len(layers) - 1
    nodes.append(helper.make_node("Squeeze", [f"lstm_{last}_Y_h", axis0], ["h_T"], name="last_hidden"))
    features = "h_T"
    if S:
        nodes.append(helper.make_node("Concat", ["h_T", "statics"], ["head_input"], name="concat_statics", axis=1))
        features = "head_input"
    nodes.append(helper.make_node("Gemm", [features, const(head_w.astype(np.float32), "head_weight"),
                                           const(head_b.astype(np.float32), "head_bias")],
                                  ["logits"], name="head", transB=1))
    nodes.append(helper.make_node("Sigmoid", ["logits"], ["scores"], name="scores"))
    graph = helper.make_graph(nodes, name, inputs,
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", P])], inits)
    model = helper.make_model(graph, producer_name="recsys", opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8  # what onnx 1.12 writes for opset 13; readable by older runtimes too
    model.doc_string = ("recsys LSTM recommender: scores = sigmoid(Gemm([h_T, statics])), inputs encoded as "
                        "recsys encodes them (see the recsys_spec metadata)")
    spec_json = json.dumps(spec, ensure_ascii=False, separators=(",", ":"))
    helper.set_model_props(model, {"recsys_spec": spec_json, "recsys_products": json.dumps(spec["products"])})
    onnx.checker.check_model(model)
    return model


def fetch_model(dsn, model, version):
    """The bytes of a registered version (the production one when version is None)."""
    import psycopg2

    try:
        conn = psycopg2.connect(dsn)
        try:
            return _fetch_model(conn, model, version)
        finally:
            conn.close()
    except psycopg2.Error as e:
        raise exporter.ExportError(f"reading recsys.models failed: {str(e).strip()}")


def _fetch_model(conn, model, version):
    with conn, conn.cursor() as cur:
        if version is None:
            cur.execute("SELECT m.version FROM recsys.models m WHERE m.name = %s AND m.status = 'production'", (model,))
            row = cur.fetchone()
            if row is None:
                raise exporter.ExportError(f"model {model!r} has no production version; pass --version")
            version = row[0]
        cur.execute("SELECT m.model FROM recsys.models m WHERE m.name = %s AND m.version = %s", (model, version))
        row = cur.fetchone()
        if row is None:
            raise exporter.ExportError(f"model {model!r} has no version {version}")
        return bytes(row[0]), version


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--model-file", help="a recsys model file (.rsm)")
    src.add_argument("--dsn", help="libpq connection string of the database holding recsys.models")
    parser.add_argument("--model", default="default", help="registered model name (with --dsn)")
    parser.add_argument("--version", type=int, help="registered version (with --dsn; default: production)")
    parser.add_argument("--out", required=True, help="ONNX file to write")
    args = parser.parse_args(argv)
    try:
        if args.model_file:
            with open(args.model_file, "rb") as f:
                data = f.read()
            label = os.path.basename(args.model_file)
        else:
            data, version = fetch_model(args.dsn, args.model, args.version)
            label = f"{args.model}_v{version}"
        model = build_graph(data, name=label)
        with open(args.out, "wb") as f:
            f.write(model.SerializeToString())
    except (exporter.ExportError, OSError) as e:
        print(f"recsys_to_onnx: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: ONNX opset {OPSET}, {len(model.graph.node)} nodes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
