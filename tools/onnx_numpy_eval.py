#!/usr/bin/python3
"""A small numpy evaluator for the ONNX node types recsys's ONNX tools meet.

onnxruntime is not packaged in Debian and onnx 1.12 has no reference evaluator, so this
module runs a graph itself, written from the ONNX operator specification (not from recsys's
or torch's code), to check that an exported graph gives recsys's scores outside the
database and that an imported graph is what the importer understood it to be.

Supported: Constant, Identity, Cast (to float or int64), Shape, Gather, Unsqueeze, Squeeze
(axes as input, opset >= 13, or attribute), Concat, ConstantOfShape, Slice (inputs form),
Transpose, Reshape, Expand, Gemm, MatMul, Add, Mul, Sigmoid, and LSTM (forward direction, default
activations, optional sequence_lens / initial_h / initial_c, layout 0 or 1). Anything else
raises NotImplementedError naming the node.

The LSTM follows the ONNX spec: gate order i, o, f, c; W [num_directions, 4H, I],
R [num_directions, 4H, H], B [num_directions, 8H] (Wb then Rb);
    i = sigmoid(X Wi^T + H Ri^T + Wbi + Rbi),  o = sigmoid(... o ...),  f = sigmoid(... f ...)
    c~ = tanh(... c ...),  C = f * C + i * c~,  H = o * tanh(C)
Outputs Y [seq, num_directions, batch, H] (layout 0), Y_h and Y_c [num_directions, batch, H].
Arithmetic is float64 on the float32 inputs; results are returned as float32.
"""

import numpy as np
from onnx import numpy_helper


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _attrs(node):
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _lstm(node, inputs, attrs):
    X, W, R = inputs[0], inputs[1], inputs[2]
    B = inputs[3] if len(inputs) > 3 and inputs[3] is not None else None
    seq_lens = inputs[4] if len(inputs) > 4 else None
    h0 = inputs[5] if len(inputs) > 5 else None
    c0 = inputs[6] if len(inputs) > 6 else None
    if len(inputs) > 7 and inputs[7] is not None:
        raise NotImplementedError(f"LSTM node {node.name!r}: peepholes (input P)")
    direction = attrs.get("direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction != "forward":
        raise NotImplementedError(f"LSTM node {node.name!r}: direction {direction}")
    for a in ("activations", "clip", "activation_alpha", "activation_beta"):
        if a in attrs:
            raise NotImplementedError(f"LSTM node {node.name!r}: attribute {a}")
    if attrs.get("input_forget", 0):
        raise NotImplementedError(f"LSTM node {node.name!r}: input_forget")
    layout = attrs.get("layout", 0)
    x = np.asarray(X, dtype=np.float64)
    if layout == 1:  # [batch, seq, input]
        x = x.transpose(1, 0, 2)
    T, batch, _ = x.shape
    Hs = int(attrs["hidden_size"])
    w, r = np.asarray(W[0], np.float64), np.asarray(R[0], np.float64)
    b = np.zeros(8 * Hs) if B is None else np.asarray(B[0], np.float64)
    bias = b[:4 * Hs] + b[4 * Hs:]
    h = np.zeros((batch, Hs)) if h0 is None else np.asarray(h0, np.float64)[0].copy()
    c = np.zeros((batch, Hs)) if c0 is None else np.asarray(c0, np.float64)[0].copy()
    lens = np.full(batch, T) if seq_lens is None else np.asarray(seq_lens).astype(np.int64)
    Y = np.zeros((T, 1, batch, Hs))
    for t in range(T):
        gates = x[t] @ w.T + h @ r.T + bias
        i = _sigmoid(gates[:, 0:Hs])
        o = _sigmoid(gates[:, Hs:2 * Hs])
        f = _sigmoid(gates[:, 2 * Hs:3 * Hs])
        g = np.tanh(gates[:, 3 * Hs:4 * Hs])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        live = (t < lens)[:, None]  # a sequence that has ended keeps its last state
        c = np.where(live, c_new, c)
        h = np.where(live, h_new, h)
        Y[t, 0] = np.where(live, h_new, 0.0)
    if layout == 1:
        Y = Y.transpose(2, 0, 1, 3)
        return [Y.astype(np.float32), h[:, None, :].astype(np.float32), c[:, None, :].astype(np.float32)]
    return [Y.astype(np.float32), h[None].astype(np.float32), c[None].astype(np.float32)]


def _axes(node, inputs, attrs):
    if len(inputs) > 1 and inputs[1] is not None:
        return [int(a) for a in np.asarray(inputs[1]).reshape(-1)]
    return list(attrs.get("axes", []))


def _run_node(node, inputs, opset):
    op, attrs = node.op_type, _attrs(node)
    if op == "Constant":
        if "value" not in attrs:
            raise NotImplementedError(f"Constant node {node.name!r} without a tensor value")
        return [numpy_helper.to_array(attrs["value"])]
    if op == "Identity":
        return [inputs[0]]
    if op == "Cast":
        to = attrs["to"]
        types = {1: np.float32, 6: np.int32, 7: np.int64, 11: np.float64}
        if to not in types:
            raise NotImplementedError(f"Cast node {node.name!r} to type {to}")
        return [np.asarray(inputs[0]).astype(types[to])]
    if op == "Shape":
        return [np.array(np.shape(inputs[0]), dtype=np.int64)]
    if op == "Gather":
        return [np.take(inputs[0], np.asarray(inputs[1]).astype(np.int64), axis=attrs.get("axis", 0))]
    if op == "Unsqueeze":
        x = np.asarray(inputs[0])
        axes = sorted(a % (x.ndim + len(_axes(node, inputs, attrs))) for a in _axes(node, inputs, attrs))
        for a in axes:
            x = np.expand_dims(x, a)
        return [x]
    if op == "Squeeze":
        x = np.asarray(inputs[0])
        axes = _axes(node, inputs, attrs)
        return [np.squeeze(x, axis=tuple(a % x.ndim for a in axes)) if axes else np.squeeze(x)]
    if op == "Concat":
        return [np.concatenate([np.asarray(i) for i in inputs], axis=attrs["axis"])]
    if op == "ConstantOfShape":
        value = numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
        return [np.full(tuple(int(d) for d in inputs[0]), value.reshape(-1)[0], dtype=value.dtype)]
    if op == "Slice":
        x = np.asarray(inputs[0])
        starts, ends = np.asarray(inputs[1]).reshape(-1), np.asarray(inputs[2]).reshape(-1)
        axes = np.asarray(inputs[3]).reshape(-1) if len(inputs) > 3 and inputs[3] is not None else np.arange(len(starts))
        steps = np.asarray(inputs[4]).reshape(-1) if len(inputs) > 4 and inputs[4] is not None else np.ones(len(starts), np.int64)
        index = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            index[int(a) % x.ndim] = slice(int(s), int(min(e, 2**62)) if e > 0 else int(e), int(st))
        return [x[tuple(index)]]
    if op == "Transpose":
        return [np.transpose(inputs[0], attrs.get("perm"))]
    if op == "Reshape":
        x = np.asarray(inputs[0])
        shape = [int(d) for d in inputs[1]]
        shape = [x.shape[i] if d == 0 and not attrs.get("allowzero", 0) else d for i, d in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Gemm":
        a, b = np.asarray(inputs[0], np.float64), np.asarray(inputs[1], np.float64)
        if attrs.get("transA", 0):
            a = a.T
        if attrs.get("transB", 0):
            b = b.T
        y = attrs.get("alpha", 1.0) * (a @ b)
        if len(inputs) > 2 and inputs[2] is not None:
            y = y + attrs.get("beta", 1.0) * np.asarray(inputs[2], np.float64)
        return [y.astype(np.float32)]
    if op == "MatMul":
        return [(np.asarray(inputs[0], np.float64) @ np.asarray(inputs[1], np.float64)).astype(np.float32)]
    if op == "Add":
        return [(np.asarray(inputs[0], np.float64) + np.asarray(inputs[1], np.float64)).astype(np.float32)]
    if op == "Mul":
        return [(np.asarray(inputs[0], np.float64) * np.asarray(inputs[1], np.float64)).astype(np.asarray(inputs[0]).dtype)]
    if op == "Expand":
        x = np.asarray(inputs[0])
        return [x * np.ones(tuple(int(d) for d in inputs[1]), dtype=x.dtype)]
    if op == "Sigmoid":
        return [_sigmoid(np.asarray(inputs[0], np.float64)).astype(np.float32)]
    if op == "LSTM":
        return _lstm(node, inputs, attrs)
    raise NotImplementedError(f"node {node.name!r}: operator {op} is not supported by this evaluator")


def run(model, feeds):
    """Evaluates the ONNX ModelProto on feeds {input name: array}; returns {output name: array}."""
    graph = model.graph
    opset = max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=13)
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for i in graph.input:
        if i.name in values and i.name not in feeds:
            continue
        if i.name not in feeds:
            raise KeyError(f"no value for the graph input {i.name!r}")
        values[i.name] = np.asarray(feeds[i.name])
    for node in graph.node:  # ONNX requires nodes in topological order
        inputs = [values[n] if n else None for n in node.input]
        for name, v in zip(node.output, _run_node(node, inputs, opset)):
            if name:
                values[name] = v
    return {o.name: values[o.name] for o in graph.output}
