#!/usr/bin/python3
"""Convert an ONNX LSTM recommender into a recsys model file.

    /usr/bin/python3 tools/onnx_to_recsys.py --onnx model.onnx --spec spec.json --out model.rsm

The graph must compute what recsys computes:

    h_T    = final hidden state of a stack of ONNX LSTM nodes (one node per layer) over the steps
    scores = Sigmoid(Gemm(Concat([h_T, statics], axis=1)))   (or MatMul + Add, or no statics)

which is what torch.onnx.export gives for a torch.nn.LSTM followed by a torch.nn.Linear over
cat([h_n[-1], statics]) and torch.sigmoid, and what tools/recsys_to_onnx.py writes. Accepted
around that: a Transpose of the steps input (batch-first models) or LSTM layout=1, Squeeze /
Reshape / Gather / Concat / Slice nodes between the layers and to h_T, initial states that
are zero (torch.onnx computes them with ConstantOfShape), Gemm with any alpha, beta, transB.
Refused, with a message: bidirectional or reverse LSTMs, peepholes, clip, input_forget,
activations other than the default (Sigmoid, Tanh, Tanh), sequence_lens inputs, a head that
is not Gemm or MatMul(+Add) under a final Sigmoid, several outputs.

The spec is the JSON object documented in tools/export_torch_model.py --help (source,
window, products, features and, for a step input laid out differently from recsys's,
"step_input"). When --spec is left out, the spec stored in the graph's metadata under
"recsys_spec" (written by tools/recsys_to_onnx.py) is used.

The weights are read from the graph in the ONNX layout (W [1, 4H, I], R [1, 4H, H],
B [1, 8H] = Wb then Rb, gate order i, o, f, c) and reordered into recsys's (torch's i, f, g, o).
Before writing, the converter checks what it understood: it runs the ONNX graph with the
numpy evaluator in tools/onnx_numpy_eval.py on random inputs and the converted model's
weights with a plain numpy LSTM, and refuses the graph if any score differs by more than
1e-5 (for example an initial state that is not zero). Needs numpy and onnx (Debian's
python3-onnx), not torch.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_torch_model as exporter  # noqa: E402
import onnx_numpy_eval  # noqa: E402

VERIFY_TOLERANCE = 1e-5


class ConversionError(exporter.ExportError):
    """The graph cannot be converted; the message says why."""


def _fail(message):
    raise ConversionError(message)


def onnx_to_torch_gates(a, H):
    """Reorders the 4H gate rows of an ONNX LSTM array (i, o, f, c) into torch's (i, f, g, o)."""
    i, o, f, c = (a[k * H:(k + 1) * H] for k in range(4))
    return np.concatenate([i, f, c, o], axis=0)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def recsys_forward(layers, head_w, head_b, steps, statics):
    """What recsys computes, in numpy float64: layers in torch layout and gate order, steps
    T x B x W (time-major), statics B x S. Returns the scores B x P."""
    x = np.asarray(steps, np.float64)
    for w_ih, w_hh, b_ih, b_hh in layers:
        H = w_hh.shape[1]
        h = np.zeros((x.shape[1], H))
        c = np.zeros((x.shape[1], H))
        ys = []
        for t in range(x.shape[0]):
            g = x[t] @ np.asarray(w_ih, np.float64).T + h @ np.asarray(w_hh, np.float64).T + b_ih + b_hh
            i, f, gg, o = sigmoid(g[:, :H]), sigmoid(g[:, H:2 * H]), np.tanh(g[:, 2 * H:3 * H]), sigmoid(g[:, 3 * H:])
            c = f * c + i * gg
            h = o * np.tanh(c)
            ys.append(h)
        x = np.stack(ys)
    z = np.concatenate([h, np.asarray(statics, np.float64)], axis=1) @ np.asarray(head_w, np.float64).T + head_b
    return sigmoid(z)


class Graph:
    """Lookups over an ONNX graph: producers, constants, graph inputs."""

    def __init__(self, model):
        self.model = model
        self.graph = model.graph
        self.producer = {o: n for n in self.graph.node for o in n.output if o}
        self.initializers = {t.name: t for t in self.graph.initializer}
        self.inputs = [i for i in self.graph.input if i.name not in self.initializers]

    def constant(self, name, what):
        from onnx import numpy_helper

        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    return numpy_helper.to_array(a.t)
        if node is not None and node.op_type == "Identity":
            return self.constant(node.input[0], what)
        _fail(f"{what} ({name!r}) is not a constant: recsys needs the weights stored in the graph")

    def ancestors(self, name, stop=()):
        """Every value name that `name` is computed from (itself included), not looking
        past the names in `stop`."""
        seen, todo = set(), [name]
        while todo:
            n = todo.pop()
            if n in seen or not n:
                continue
            seen.add(n)
            node = self.producer.get(n)
            if node is not None and n not in stop:
                todo.extend(node.input)
        return seen

    def input_dims(self, value_info):
        dims = []
        for d in value_info.type.tensor_type.shape.dim:
            dims.append(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None)
        return dims


def _attrs(node):
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _text(v):
    return v.decode() if isinstance(v, bytes) else v


def _lstm_layers(g):
    """The LSTM nodes as one stack: [(node, W, R, B)], layer 0 first; and the name of the graph
    input the steps come from, and whether they arrive batch-first."""
    nodes = [n for n in g.graph.node if n.op_type == "LSTM"]
    if not nodes:
        _fail("the graph has no LSTM node")
    layers = []
    for k, node in enumerate(nodes):
        a = _attrs(node)
        where = f"LSTM node {k} ({node.name or 'unnamed'})"
        direction = _text(a.get("direction", "forward"))
        if direction != "forward":
            _fail(f"{where} has direction {direction!r}; recsys runs forward (unidirectional) LSTMs only")
        acts = [_text(x) for x in a.get("activations", [])]
        if acts and [x.lower() for x in acts] != ["sigmoid", "tanh", "tanh"]:
            _fail(f"{where} uses the activations {acts}; recsys supports only Sigmoid, Tanh, Tanh")
        if "clip" in a:
            _fail(f"{where} clips its cell input at {a['clip']}; recsys does not clip")
        if a.get("input_forget", 0):
            _fail(f"{where} couples the input and forget gates (input_forget=1); recsys does not")
        if len(node.input) > 7 and node.input[7]:
            _fail(f"{where} has peephole weights (input P); recsys does not support peepholes")
        if len(node.input) > 4 and node.input[4]:
            _fail(f"{where} takes sequence_lens; recsys feeds full windows (leave it out)")
        H = int(a["hidden_size"])
        W = g.constant(node.input[1], f"{where} W").astype(np.float32)
        R = g.constant(node.input[2], f"{where} R").astype(np.float32)
        B = (g.constant(node.input[3], f"{where} B").astype(np.float32) if len(node.input) > 3 and node.input[3]
             else np.zeros((1, 8 * H), np.float32))
        if W.ndim != 3 or W.shape[0] != 1 or W.shape[1] != 4 * H:
            _fail(f"{where} has W of shape {W.shape}; expected [1, {4 * H}, input] (one direction)")
        if R.shape != (1, 4 * H, H) or B.shape != (1, 8 * H):
            _fail(f"{where} has R {R.shape} and B {B.shape}; expected [1, {4 * H}, {H}] and [1, {8 * H}]")
        layers.append((node, W, R, B, a.get("layout", 0)))
    # Layer k + 1 must read layer k's Y (through Squeeze / Reshape / Transpose), layer 0 a graph input.
    input_names = {i.name for i in g.inputs}
    for k in range(1, len(layers)):
        below = g.ancestors(layers[k][0].input[0], stop=set(layers[k - 1][0].output))
        if layers[k - 1][0].output[0] not in below or below & input_names:
            _fail(f"LSTM node {k} does not read LSTM node {k - 1}'s output Y: the LSTM nodes are "
                  "not one stack of layers")
    first = g.ancestors(layers[0][0].input[0])
    steps = [i for i in g.inputs if i.name in first]
    if len(steps) != 1 or any(n.op_type == "LSTM" for n in (g.producer.get(x) for x in first) if n is not None):
        _fail("the first LSTM node does not read exactly one graph input (the steps)")
    batch_first = layers[0][4] == 1
    node = g.producer.get(layers[0][0].input[0])
    while node is not None and node.op_type in ("Identity", "Cast", "Transpose"):
        if node.op_type == "Transpose":
            batch_first = not batch_first if list(_attrs(node).get("perm", [])) == [1, 0, 2] else batch_first
        node = g.producer.get(node.input[0])
    return layers, steps[0], batch_first


def _head(g, last_lstm):
    """(head_w P x K, head_b P, statics graph input or None) from the Sigmoid over the head."""
    outputs = list(g.graph.output)
    if len(outputs) != 1:
        _fail(f"the graph has {len(outputs)} outputs; recsys needs exactly one (the scores)")
    sig = g.producer.get(outputs[0].name)
    while sig is not None and sig.op_type == "Identity":
        sig = g.producer.get(sig.input[0])
    if sig is None or sig.op_type != "Sigmoid":
        _fail("the graph's output is not computed by a Sigmoid; recsys scores are sigmoid(head(...))")
    lin = g.producer.get(sig.input[0])
    if lin is None:
        _fail("the Sigmoid does not read a Gemm or MatMul head")
    if lin.op_type == "Gemm":
        a = _attrs(lin)
        if a.get("transA", 0):
            _fail("the head's Gemm has transA=1; recsys needs the features as rows (transA=0)")
        Bm = g.constant(lin.input[1], "the head's Gemm weight").astype(np.float64)
        Bm = Bm.T if a.get("transB", 0) else Bm  # K x P
        head_w = a.get("alpha", 1.0) * Bm.T
        bias = (g.constant(lin.input[2], "the head's Gemm bias").astype(np.float64) * a.get("beta", 1.0)
                if len(lin.input) > 2 and lin.input[2] else np.zeros(head_w.shape[0]))
        features = lin.input[0]
    elif lin.op_type in ("Add", "MatMul"):
        bias = None
        mm = lin
        if lin.op_type == "Add":
            sides = [g.producer.get(x) for x in lin.input]
            k = next((j for j, n in enumerate(sides) if n is not None and n.op_type == "MatMul"), None)
            if k is None:
                _fail("the head's Add does not add a bias to a MatMul")
            mm, bias = sides[k], g.constant(lin.input[1 - k], "the head's bias").astype(np.float64)
        M = g.constant(mm.input[1], "the head's MatMul weight").astype(np.float64)  # K x P
        if M.ndim != 2:
            _fail(f"the head's MatMul weight has shape {M.shape}; expected [features, products]")
        head_w = M.T
        bias = np.zeros(head_w.shape[0]) if bias is None else bias
        features = mm.input[0]
    else:
        _fail(f"the Sigmoid reads a {lin.op_type} node; recsys needs a Gemm or MatMul (+ Add) head")
    P = head_w.shape[0]
    bias = np.broadcast_to(bias.reshape(-1), (P,)) if bias.size in (1, P) else _fail(
        f"the head's bias has {bias.size} values for {P} products")
    # The head's input: h_T alone, or Concat([h_T, statics], axis 1).
    cat = g.producer.get(features)
    input_names = {i.name: i for i in g.inputs}
    statics = None
    if cat is not None and cat.op_type == "Concat" and len(cat.input) == 2 and \
            not any(n in g.ancestors(cat.input[1]) for n in last_lstm.output if n):
        if _attrs(cat).get("axis") not in (1, -1):
            _fail("the head's Concat does not join [h_T, statics] along axis 1")
        hidden_side, static_side = cat.input
        statics = [input_names[n] for n in g.ancestors(static_side) if n in input_names]
        if len(statics) != 1:
            _fail("the head's static input does not come from exactly one graph input")
        statics = statics[0]
    else:
        hidden_side = features
    ancestors = g.ancestors(hidden_side)
    if not any(n in ancestors for n in last_lstm.output[:2] if n):
        _fail("the head does not read the last LSTM node's hidden state")
    return head_w.astype(np.float32), bias.astype(np.float32), statics


def convert(model, spec=None, verify_batch=5, seed=0):
    """Returns (recsys model bytes, report dict) for an onnx ModelProto and a spec dict (None:
    the graph's recsys_spec metadata). Raises ConversionError / ExportError."""
    import onnx

    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as e:
        _fail(f"the ONNX graph is not valid: {e}")
    if spec is None:
        meta = {p.key: p.value for p in model.metadata_props}
        if "recsys_spec" not in meta:
            _fail("no spec given and the graph has no recsys_spec metadata; pass --spec")
        spec = json.loads(meta["recsys_spec"])
    g = Graph(model)
    layers_onnx, steps_input, batch_first = _lstm_layers(g)
    head_w, head_b, statics_input = _head(g, layers_onnx[-1][0])
    layers = []
    for node, W, R, B, _ in layers_onnx:
        H = R.shape[2]
        layers.append((onnx_to_torch_gates(W[0], H), onnx_to_torch_gates(R[0], H),
                       onnx_to_torch_gates(B[0, :4 * H], H), onnx_to_torch_gates(B[0, 4 * H:], H)))
    norm = exporter.normalize_spec(spec)
    data = exporter.export_arrays(layers, head_w, head_b, spec)

    # Check what was understood: the graph (numpy evaluator) against the written model.
    _, rl, rw, rb = exporter.read_model(data)
    T, Bn = norm["window_months"], verify_batch
    dims = g.input_dims(steps_input)
    if len(dims) == 3:
        T = (dims[0] if not batch_first else dims[1]) or T
        Bn = (dims[1] if not batch_first else dims[0]) or Bn
    W, S = exporter.step_width(norm), exporter.static_width(norm)
    rng = np.random.default_rng(seed)
    steps = rng.standard_normal((T, Bn, W)).astype(np.float32)
    statics = rng.standard_normal((Bn, S)).astype(np.float32)
    feeds = {steps_input.name: steps.transpose(1, 0, 2) if batch_first else steps}
    if statics_input is not None:
        feeds[statics_input.name] = statics
    elif S:
        _fail(f"the spec has {S} static input columns but the graph's head reads no static input")
    try:
        want = onnx_numpy_eval.run(model, feeds)[model.graph.output[0].name]
    except NotImplementedError as e:
        _fail(f"the graph uses something the converter cannot check: {e}")
    placed = np.zeros((T, Bn, exporter.recsys_step_width(norm)), np.float32)
    for _, offset, width, recsys_offset in exporter.step_layout(norm):
        placed[:, :, recsys_offset:recsys_offset + width] = steps[:, :, offset:offset + width]
    got = recsys_forward(rl, rw, rb, placed, statics)
    delta = float(np.abs(np.asarray(want, np.float64).reshape(got.shape) - got).max())
    if not delta <= VERIFY_TOLERANCE:
        _fail(f"the converted model's scores differ from the graph's by up to {delta:.3g} on random "
              "inputs: the graph computes something else than an LSTM stack from zero states with a "
              "sigmoid head (a non-zero initial state?)")
    report = {"layers": len(layers), "hidden": int(layers[0][1].shape[1]), "products": int(head_w.shape[0]),
              "step_width": W, "static_width": S, "batch_first": batch_first, "verify_max_abs_diff": delta}
    return data, report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--onnx", required=True, help="the ONNX model file")
    parser.add_argument("--spec", help="JSON spec (default: the graph's recsys_spec metadata)")
    parser.add_argument("--out", required=True, help="recsys model file to write (.rsm)")
    args = parser.parse_args(argv)
    try:
        import onnx

        model = onnx.load(args.onnx)
        spec = None
        if args.spec:
            with open(args.spec, encoding="utf-8") as f:
                spec = json.load(f)
        data, report = convert(model, spec)
        with open(args.out, "wb") as f:
            f.write(data)
    except (exporter.ExportError, OSError, json.JSONDecodeError) as e:
        print(f"onnx_to_recsys: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {len(data)} bytes, {report['layers']} layer(s), hidden {report['hidden']}, "
          f"{report['products']} products; graph vs converted model max |diff| {report['verify_max_abs_diff']:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
