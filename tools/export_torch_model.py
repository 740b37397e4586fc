#!/usr/bin/python3
"""Export a PyTorch LSTM recommender to the recsys binary model format.

The model is a ``torch.nn.LSTM`` (unidirectional, ``bias=True``, any ``num_layers`` >= 1,
``batch_first`` either way, no projection) followed by a ``torch.nn.Linear`` head whose
``in_features`` is ``hidden + static_width`` and whose ``out_features`` is the number of
products. recsys scores a customer as::

    h_T = last hidden state of the top LSTM layer after the T months of the window
    scores = sigmoid(head(cat([h_T, statics], dim=1)))

The bytes written are exactly what ``src/core/model_format.cpp`` serializes: the magic
``RECSYSLM``, format version 1 (u32), the total length (u64), the source, window, flags, start month,
dimensions, products and features, the float32 little-endian weights in PyTorch order
(per layer: weight_ih, weight_hh, bias_ih, bias_hh; then head.weight, head.bias), and the
SHA-256 of all preceding bytes.

The spec
--------
The spec is the JSON object that ``recsys`` reports for a model (``model_spec_json`` in
``src/core/model_json.h``, also what the SQL registry stores), without the derived fields::

    {"source": {"relation": "public.santander", "id_column": "ncodpers",
                "month_column": "fecha_dato"},
     "window_months": 12,
     "include_product_adds": true,
     "products": ["ind_ahor_fin_ult1", ...],
     "features": [
        {"column": "renta", "kind": "numeric", "role": "static", "transform": "log1p",
         "mean": 11.2, "stddev": 0.8, "clip_min": 0, "clip_max": 1e7,
         "missing_indicator": true},
        {"column": "segmento", "kind": "categorical", "role": "dynamic",
         "vocabulary": ["01 - TOP", "02 - PARTICULARES", "03 - UNIVERSITARIO"]}]}

Numeric fields default to transform "identity", mean 0, stddev 1, clip_min -1e30,
clip_max 1e30 and missing_indicator true; a null clip bound means no bound. The derived
fields ("format_version", "hidden", "layers", "step_width", "static_width",
"parameter_count") may be present, as in a spec copied from an exported model; they are
then checked against the torch modules.

Encoded widths: a numeric feature encodes to 1 value, plus 1 missing indicator when
missing_indicator is true; a categorical one to len(vocabulary) + 1 values (one-hot, the
last slot for unknown or NULL). The static input is the encoded static features in spec
order; the head's in_features must be hidden + that width.

Two defaults WIDEN the input, and a model trained without those columns will not match
until they are switched off: "missing_indicator" (default true: every numeric feature is
2 columns, not 1) and "include_product_adds" (default true: P more step columns).

The step input ("step_input")
-----------------------------
Without "step_input", each step's input is, in this order: [product flags (P), product
adds (P, when include_product_adds), the encoded dynamic features in spec order]. A model
trained on another layout describes its step input as an ordered list of encoded blocks,
each at most once, any of them left out::

    "step_input": [{"feature": "age"}, "product_adds", {"feature": "segmento"}]

    "product_flags"       P columns: 1 when the customer holds the product that month
    "product_adds"        P columns: 1 when the product was added that month
    {"feature": COLUMN}   the encoded feature (width as above); the feature is dynamic

With "step_input", a feature it names is dynamic and every other feature is static (a
"role" may be given but must agree), and include_product_adds may be left out (it must
agree when given). The LSTM's input_size must equal the sum of the block widths. Errors:
an unknown block, a block given twice, a feature not in "features", a width that differs
from input_size (the message lists each block's width).

recsys stores every model in its own step layout ([flags, adds, dynamic features]): the
exporter places each of the model's input columns at its place in that layout and gives
the columns the model does not read (for example the product flags of a model without
them) zero weights, so recsys computes exactly the model's function. recsys.model_spec()
then reports the recsys layout, not "step_input".

Checkpoint layout (for the command line)
----------------------------------------
``torch.save`` a dict whose ``"state_dict"`` entry (or the dict itself) holds::

    lstm.weight_ih_l{k}, lstm.weight_hh_l{k}, lstm.bias_ih_l{k}, lstm.bias_hh_l{k}
        for k = 0 .. num_layers - 1
    head.weight, head.bias

which is what ``model.state_dict()`` gives for a module with attributes ``lstm`` and
``head``.

What a data scientist runs
--------------------------
1. Save the checkpoint (in the training script)::

       torch.save({"state_dict": model.state_dict()}, "ckpt.pt")

2. Export it::

       /usr/bin/python3 tools/export_torch_model.py --checkpoint ckpt.pt \\
           --spec spec.json --out /path/model.rsm

3. Register it in the database, from a file the server can read::

       psql -c "SELECT recsys.register_model_file('name', '/path/model.rsm')"

   or, with a psql variable and the bytes read by the server (psql does not expand
   variables in -c, so feed the commands on standard input)::

       psql <<'SQL'
       \\set path '/path/model.rsm'
       SELECT recsys.register_model('name', pg_read_binary_file(:'path'));
       SQL

   recsys.register_model returns the new version number. pg_read_binary_file needs
   superuser or the pg_read_server_files role.

From Python, ``export_model(lstm, head, spec) -> bytes`` and
``write_model(path, lstm, head, spec)`` do the same without a checkpoint file;
``export_arrays(layers, head_w, head_b, spec)`` takes numpy arrays in torch layout instead
of modules, and ``read_model(bytes)`` reads a model file back into (spec, arrays).

ONNX graphs come in through tools/onnx_to_recsys.py and registered versions go out through
tools/recsys_to_onnx.py (docs/importing-models.md).
"""

import argparse
import hashlib
import json
import math
import struct
import sys

MAGIC = b"RECSYSLM"
FORMAT_VERSION = 1
FLAG_PRODUCT_ADDS = 1
FLAG_FROM_START_MONTH = 2
CHECKSUM_BYTES = 32

# Limits enforced by the C++ parser (src/core/model.h).
MAX_WINDOW_MONTHS = 240
MAX_LAYERS = 8
MAX_HIDDEN = 4096
MAX_PRODUCTS = 1024
MAX_FEATURES = 1024
MAX_VOCABULARY = 65536
MAX_NAME_LENGTH = 1024

KINDS = {"numeric": 0, "categorical": 1}
ROLES = {"dynamic": 0, "static": 1}
TRANSFORMS = {"identity": 0, "log1p": 1}
DERIVED_FIELDS = ("format_version", "hidden", "layers", "step_width", "static_width", "parameter_count")


class ExportError(ValueError):
    """The torch modules or the spec cannot be exported; the message says why."""


def _fail(message):
    raise ExportError(message)


# ---------------------------------------------------------------------------------------
# Spec


def _text(value, what):
    """The rule recsys's parser applies to every model string: UTF-8, no C0 control characters."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        _fail(f"{what} cannot be encoded as UTF-8 (a lone surrogate?): {value!r}")
    bad = [c for c in value if ord(c) < 0x20]
    if bad:
        _fail(f"{what} contains the control character {bad[0]!r}; model strings may not")
    return value


def _name(value, what):
    if not isinstance(value, str):
        _fail(f"{what} must be a string, got {value!r}")
    if not value:
        _fail(f"{what} must not be empty")
    _text(value, what)
    if len(value.encode("utf-8")) > MAX_NAME_LENGTH:
        _fail(f"{what} is {len(value.encode('utf-8'))} bytes long; the limit is {MAX_NAME_LENGTH}")
    return value


def _count(value, what, low, high):
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(f"{what} must be an integer, got {value!r}")
    if not low <= value <= high:
        _fail(f"{what} is {value}; it must be {low} to {high}")
    return value


def _float32(value, what, default, none_value=None):
    if value is None:
        if none_value is None:
            _fail(f"{what} must be a number, got null")
        value = none_value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        _fail(f"{what} must be a number, got {value!r}")
    try:
        return struct.unpack("<f", struct.pack("<f", float(value)))[0]
    except (OverflowError, struct.error):
        _fail(f"{what} is {value!r}, out of the float32 range")


def normalize_spec(spec):
    """Checks the spec and returns a normalized copy (defaults filled in, floats rounded to
    float32). Raises ExportError with a precise message."""
    if not isinstance(spec, dict):
        _fail("the spec must be a JSON object")
    if "format_version" in spec and spec["format_version"] != FORMAT_VERSION:
        _fail(f"the spec has format_version {spec['format_version']!r}; this exporter writes {FORMAT_VERSION}")
    source = spec.get("source")
    if not isinstance(source, dict):
        _fail('the spec needs "source": {"relation", "id_column", "month_column"}')
    out = {
        "source": {
            "relation": _name(source.get("relation"), "source.relation"),
            "id_column": _name(source.get("id_column"), "source.id_column"),
            "month_column": _name(source.get("month_column"), "source.month_column"),
        },
        "window_months": _count(spec.get("window_months"), "window_months", 1, MAX_WINDOW_MONTHS),
    }
    # "history": {"mode": "sliding_window"} (the default: the last T months) or
    # {"mode": "from_start_month", "start_month": "YYYY-MM"} (every month since then).
    history = spec.get("history", {"mode": "sliding_window"})
    if not isinstance(history, dict) or history.get("mode") not in ("sliding_window", "from_start_month"):
        _fail('history must be {"mode": "sliding_window"} or {"mode": "from_start_month", "start_month": "YYYY-MM"}')
    out["history"] = {"mode": history["mode"]}
    if history["mode"] == "from_start_month":
        start = history.get("start_month")
        try:
            year, month = (int(x) for x in str(start).split("-")[:2])
            if not (1900 <= year <= 9999 and 1 <= month <= 12):
                raise ValueError
        except ValueError:
            _fail(f"history.start_month must be YYYY-MM, got {start!r}")
        out["history"]["start_month"] = f"{year:04d}-{month:02d}"
    adds = spec.get("include_product_adds", True)
    if not isinstance(adds, bool):
        _fail(f"include_product_adds must be true or false, got {adds!r}")
    out["include_product_adds"] = adds

    products = spec.get("products")
    if not isinstance(products, list) or not 1 <= len(products) <= MAX_PRODUCTS:
        _fail(f"products must be a list of 1 to {MAX_PRODUCTS} column names")
    out["products"] = [_name(p, f"products[{i}]") for i, p in enumerate(products)]

    features = spec.get("features", [])
    if not isinstance(features, list) or len(features) > MAX_FEATURES:
        _fail(f"features must be a list of at most {MAX_FEATURES} objects")
    step_input = _normalize_step_input(spec, features)
    if step_input is not None:
        has_adds = "product_adds" in step_input
        if "include_product_adds" in spec and spec["include_product_adds"] != has_adds:
            _fail(f"include_product_adds is {spec['include_product_adds']!r} but step_input "
                  f"{'lists' if has_adds else 'does not list'} \"product_adds\"")
        out["include_product_adds"] = has_adds
        out["step_input"] = step_input
        dynamic_columns = {b[1] for b in step_input if isinstance(b, tuple)}
    out["features"] = []
    for i, f in enumerate(features):
        if not isinstance(f, dict):
            _fail(f"features[{i}] must be an object")
        column = _name(f.get("column"), f"features[{i}].column")
        what = f'feature "{column}"'
        kind = f.get("kind", "numeric")
        if kind not in KINDS:
            _fail(f'{what} has kind {kind!r}; it must be "numeric" or "categorical"')
        role = f.get("role")
        if step_input is not None:
            implied = "dynamic" if column in dynamic_columns else "static"
            if role is None:
                role = implied
            elif role != implied:
                _fail(f'{what} has role {role!r} but step_input '
                      f'{"lists" if implied == "dynamic" else "does not list"} it')
        if role not in ROLES:
            _fail(f'{what} has role {role!r}; it must be "dynamic" or "static"')
        g = {"column": column, "kind": kind, "role": role}
        if kind == "numeric":
            transform = f.get("transform", "identity")
            if transform not in TRANSFORMS:
                _fail(f'{what} has transform {transform!r}; it must be "identity" or "log1p"')
            g["transform"] = transform
            g["mean"] = _float32(f.get("mean", 0.0), f"{what} mean", 0.0)
            g["stddev"] = _float32(f.get("stddev", 1.0), f"{what} stddev", 1.0)
            g["clip_min"] = _float32(f.get("clip_min", -1e30), f"{what} clip_min", -1e30, -math.inf)
            g["clip_max"] = _float32(f.get("clip_max", 1e30), f"{what} clip_max", 1e30, math.inf)
            if not (math.isfinite(g["mean"]) and math.isfinite(g["stddev"]) and g["stddev"] > 0):
                _fail(f"{what} has mean {g['mean']} and stddev {g['stddev']}; "
                      "the stddev must be positive and both finite")
            if not g["clip_min"] <= g["clip_max"]:
                _fail(f"{what} has clip_min {g['clip_min']} above clip_max {g['clip_max']}")
            mi = f.get("missing_indicator", True)
            if not isinstance(mi, bool):
                _fail(f"{what} missing_indicator must be true or false, got {mi!r}")
            g["missing_indicator"] = mi
            if "vocabulary" in f:
                _fail(f"{what} is numeric but has a vocabulary")
        else:
            vocabulary = f.get("vocabulary")
            if not isinstance(vocabulary, list) or len(vocabulary) > MAX_VOCABULARY:
                _fail(f"{what} is categorical and needs a vocabulary list of at most {MAX_VOCABULARY} values")
            for j, v in enumerate(vocabulary):
                if not isinstance(v, str):
                    _fail(f"{what} vocabulary[{j}] must be a string of at most {MAX_NAME_LENGTH} bytes")
                _text(v, f"{what} vocabulary[{j}]")
                if len(v.encode("utf-8")) > MAX_NAME_LENGTH:
                    _fail(f"{what} vocabulary[{j}] must be a string of at most {MAX_NAME_LENGTH} bytes")
            g["vocabulary"] = list(vocabulary)
        out["features"].append(g)
    return out


STEP_BLOCKS = ("product_flags", "product_adds")


def _normalize_step_input(spec, features):
    """The "step_input" list as tuples: "product_flags", "product_adds" or ("feature", column);
    None when the spec has none (the recsys layout)."""
    if "step_input" not in spec:
        return None
    blocks = spec["step_input"]
    if not isinstance(blocks, list) or not blocks:
        _fail('step_input must be a non-empty list of blocks: "product_flags", "product_adds" '
              'or {"feature": COLUMN}')
    columns = [f.get("column") for f in features if isinstance(f, dict)]
    out, seen = [], set()
    for i, b in enumerate(blocks):
        if isinstance(b, str):
            if b not in STEP_BLOCKS:
                _fail(f'step_input[{i}] is the unknown block {b!r}; a block is "product_flags", '
                      f'"product_adds" or {{"feature": COLUMN}}')
            key = b
        elif isinstance(b, tuple) and len(b) == 2 and b[0] == "feature" and b[1] in columns:
            key = b  # already normalized
        elif isinstance(b, dict) and set(b) == {"feature"} and isinstance(b["feature"], str):
            if b["feature"] not in columns:
                _fail(f'step_input[{i}] names the feature {b["feature"]!r}, which is not in "features"')
            key = ("feature", b["feature"])
        else:
            _fail(f'step_input[{i}] is {b!r}; a block is "product_flags", "product_adds" or '
                  f'{{"feature": COLUMN}}')
        if key in seen:
            _fail(f"step_input[{i}] repeats the block {b!r}; each block may appear once")
        seen.add(key)
        out.append(key)
    return out


def _block_name(block):
    return block if isinstance(block, str) else f'feature "{block[1]}"'


def step_layout(spec):
    """For a normalized spec: the step input's blocks as (name, offset in the model's input,
    width, offset in the recsys layout), in the model's order. Without step_input the two
    layouts are the same."""
    spec = normalize_spec(spec)
    P = len(spec["products"])
    adds = spec.get("include_product_adds", True)
    recsys_offset = {"product_flags": 0}
    pos = P
    if adds:
        recsys_offset["product_adds"] = pos
        pos += P
    dynamic = [f for f in spec.get("features", []) if f["role"] == "dynamic"]
    width = {"product_flags": P, "product_adds": P}
    for f in dynamic:
        recsys_offset[("feature", f["column"])] = pos
        width[("feature", f["column"])] = encoded_width(f)
        pos += encoded_width(f)
    blocks = spec.get("step_input")
    if blocks is None:
        blocks = ["product_flags"] + (["product_adds"] if adds else []) + [("feature", f["column"]) for f in dynamic]
    layout, offset = [], 0
    for b in blocks:
        layout.append((_block_name(b), offset, width[b], recsys_offset[b]))
        offset += width[b]
    return layout


def recsys_step_width(spec):
    """Width of the step input in the recsys layout (what the model file stores)."""
    spec = normalize_spec(spec)
    w = len(spec["products"]) * (2 if spec.get("include_product_adds", True) else 1)
    return w + sum(encoded_width(f) for f in spec.get("features", []) if f["role"] == "dynamic")


def encoded_width(feature):
    if feature.get("kind", "numeric") == "categorical":
        return len(feature["vocabulary"]) + 1
    return 2 if feature.get("missing_indicator", True) else 1


def step_width(spec):
    """Per-step input width of the model the spec describes: the blocks of step_input, or
    products, optional product adds and encoded dynamic features (a normalized spec)."""
    return sum(width for _, _, width, _ in step_layout(spec))


def static_width(spec):
    """Width of the static vector concatenated with h_T: encoded static features."""
    spec = normalize_spec(spec)
    return sum(encoded_width(f) for f in spec.get("features", []) if f["role"] == "static")


# ---------------------------------------------------------------------------------------
# Torch modules


def _float32_array(value, what, shape):
    """value (numpy array or torch tensor) as a C-contiguous float32 numpy array of `shape`."""
    import numpy as np

    if hasattr(value, "detach"):
        value = value.detach().to(device="cpu").float().numpy()
    a = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
    if tuple(a.shape) != tuple(shape):
        _fail(f"{what} has shape {tuple(a.shape)}, expected {tuple(shape)}")
    if not np.isfinite(a).all():
        _fail(f"{what} contains NaN or infinite values")
    return a


def _width_message(spec, input_size):
    layout = step_layout(spec)
    parts = " + ".join(f"{name} {width}" for name, _, width, _ in layout)
    origin = "step_input" if "step_input" in spec else "the default step layout [product_flags, " + \
        ("product_adds, " if spec["include_product_adds"] else "") + "dynamic features]"
    return (f"the LSTM's input size is {input_size} but the spec's step width is "
            f"{sum(w for _, _, w, _ in layout)} ({origin}: {parts or 'no blocks'}); check "
            f"missing_indicator (default true: 2 columns per numeric feature) and "
            f"include_product_adds (default true: {len(spec['products'])} more columns)")


def check_dimensions(spec, input_size, hidden, layers, head_in, head_out):
    """Checks an LSTM of these dimensions and its head against a normalized spec; returns
    (H, L, W, S, P) with W the model's step width."""
    H = _count(hidden, "LSTM hidden_size", 1, MAX_HIDDEN)
    L = _count(layers, "LSTM num_layers", 1, MAX_LAYERS)
    W, S, P = step_width(spec), static_width(spec), len(spec["products"])
    if input_size != W:
        _fail(_width_message(spec, input_size))
    if head_in != H + S:
        _fail(f"the head's in_features is {head_in} but hidden + static width is {H} + {S} = {H + S}")
    if head_out != P:
        _fail(f"the head's out_features is {head_out} but the spec lists {P} products")
    return H, L, W, S, P


def torch_arrays(lstm, head):
    """The weights of a torch.nn.LSTM and its Linear head as numpy arrays in torch layout:
    ([(w_ih, w_hh, b_ih, b_hh) per layer], head_w, head_b). Refuses what recsys cannot run."""
    import torch

    if not isinstance(lstm, torch.nn.LSTM):
        _fail(f"the recurrent module must be a torch.nn.LSTM, got {type(lstm).__name__}")
    if not isinstance(head, torch.nn.Linear):
        _fail(f"the head must be a torch.nn.Linear, got {type(head).__name__}")
    if lstm.bidirectional:
        _fail("the LSTM is bidirectional; recsys supports unidirectional LSTMs only")
    if not lstm.bias:
        _fail("the LSTM has bias=False; recsys needs bias=True")
    if getattr(lstm, "proj_size", 0):
        _fail(f"the LSTM has proj_size={lstm.proj_size}; recsys does not support projections")
    if head.bias is None:
        _fail("the head has bias=False; recsys needs a bias")
    layers = [tuple(getattr(lstm, f"{n}_l{k}") for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
              for k in range(lstm.num_layers)]
    return layers, head.weight, head.bias


def export_arrays(layers, head_w, head_b, spec):
    """Returns the recsys model bytes for LSTM weights in torch layout and gate order (i, f,
    g, o): layers = [(w_ih 4H x in, w_hh 4H x H, b_ih 4H, b_hh 4H)], head_w P x (H + S),
    head_b P; the step input is laid out as the spec says (step_input or the recsys layout).
    Raises ExportError when they disagree with the spec."""
    import numpy as np

    spec_in = spec
    spec = normalize_spec(spec_in)
    if not layers:
        _fail("the model has no LSTM layer")
    w0 = np.asarray(layers[0][0] if not hasattr(layers[0][0], "detach") else layers[0][0].detach())
    hh = np.asarray(layers[0][1] if not hasattr(layers[0][1], "detach") else layers[0][1].detach())
    if w0.ndim != 2 or hh.ndim != 2:
        _fail("LSTM weights must be matrices (4H x input, 4H x H)")
    hw_shape = tuple(head_w.shape)
    if len(hw_shape) != 2:
        _fail(f"the head weight has shape {hw_shape}; expected products x (hidden + static)")
    H, L, W, S, P = check_dimensions(spec, int(w0.shape[1]), int(hh.shape[1]), len(layers), hw_shape[1], hw_shape[0])
    WR = recsys_step_width(spec)
    params = (sum(4 * H * (WR if k == 0 else H) + 4 * H * H + 8 * H for k in range(L)) + P * (H + S) + P)
    for key, value in (("hidden", H), ("layers", L), ("step_width", WR), ("static_width", S),
                       ("parameter_count", params)):
        # step_width as recsys reports it (its layout), or as the model's own step input.
        allowed = (value, W) if key == "step_width" else (value,)
        if key in spec_in and spec_in[key] not in allowed:
            _fail(f"the spec records {key} = {spec_in[key]!r} but the model gives {value}")

    out = bytearray()

    def u8(v):
        out.extend(struct.pack("<B", v))

    def u32(v):
        out.extend(struct.pack("<I", v))

    def f32(v):
        out.extend(struct.pack("<f", v))

    def string(s):
        b = s.encode("utf-8")
        u32(len(b))
        out.extend(b)

    out.extend(MAGIC)
    u32(FORMAT_VERSION)
    out.extend(b"\0" * 8)  # total length, patched below
    string(spec["source"]["relation"])
    string(spec["source"]["id_column"])
    string(spec["source"]["month_column"])
    u32(spec["window_months"])
    from_start = spec["history"]["mode"] == "from_start_month"
    u32((FLAG_PRODUCT_ADDS if spec["include_product_adds"] else 0) | (FLAG_FROM_START_MONTH if from_start else 0))
    if from_start:
        year, month = (int(x) for x in spec["history"]["start_month"].split("-"))
        u32(year * 12 + month - 1)
    else:
        u32(0)
    u32(H)
    u32(L)
    u32(P)
    for p in spec["products"]:
        string(p)
    u32(len(spec["features"]))
    for f in spec["features"]:
        string(f["column"])
        u8(KINDS[f["kind"]])
        u8(ROLES[f["role"]])
        numeric = f["kind"] == "numeric"
        u8(TRANSFORMS[f["transform"]] if numeric else 0)
        u8(1 if (f["missing_indicator"] if numeric else True) else 0)
        # Categorical features carry the C++ defaults in the numeric fields.
        f32(f["mean"] if numeric else 0.0)
        f32(f["stddev"] if numeric else 1.0)
        f32(f["clip_min"] if numeric else -1e30)
        f32(f["clip_max"] if numeric else 1e30)
        vocabulary = [] if numeric else f["vocabulary"]
        u32(len(vocabulary))
        for v in vocabulary:
            string(v)
    for k, (w_ih, w_hh, b_ih, b_hh) in enumerate(layers):
        in_w = W if k == 0 else H
        w_ih = _float32_array(w_ih, f"lstm.weight_ih_l{k}", (4 * H, in_w))
        if k == 0 and (W != WR or "step_input" in spec):
            # Each block of the model's input goes to its column range in the recsys layout;
            # columns the model does not read keep zero weights and so add exactly nothing.
            placed = np.zeros((4 * H, WR), dtype=np.float32)
            for _, offset, width, recsys_offset in step_layout(spec):
                placed[:, recsys_offset:recsys_offset + width] = w_ih[:, offset:offset + width]
            w_ih = placed
        out.extend(w_ih.astype("<f4").tobytes())
        out.extend(_float32_array(w_hh, f"lstm.weight_hh_l{k}", (4 * H, H)).astype("<f4").tobytes())
        out.extend(_float32_array(b_ih, f"lstm.bias_ih_l{k}", (4 * H,)).astype("<f4").tobytes())
        out.extend(_float32_array(b_hh, f"lstm.bias_hh_l{k}", (4 * H,)).astype("<f4").tobytes())
    out.extend(_float32_array(head_w, "head.weight", (P, H + S)).astype("<f4").tobytes())
    out.extend(_float32_array(head_b, "head.bias", (P,)).astype("<f4").tobytes())

    total = len(out) + CHECKSUM_BYTES
    out[12:20] = struct.pack("<Q", total)
    out.extend(hashlib.sha256(bytes(out)).digest())
    return bytes(out)


def export_model(lstm, head, spec):
    """Returns the recsys model bytes for an LSTM, its Linear head and the spec (a dict in
    the shape documented above). Raises ExportError when they disagree."""
    layers, head_w, head_b = torch_arrays(lstm, head)
    return export_arrays(layers, head_w, head_b, spec)


def read_model(data):
    """Parses recsys model bytes (format version 1) into (spec, layers, head_w, head_b): the
    spec in the recsys layout (no step_input), the weights as float32 numpy arrays in torch
    layout and gate order. Checks the checksum; raises ExportError on anything else."""
    import numpy as np

    data = bytes(data)
    if len(data) < len(MAGIC) + 12 + CHECKSUM_BYTES or data[:len(MAGIC)] != MAGIC:
        _fail("not a recsys model (no RECSYSLM header)")
    pos = len(MAGIC)

    def take(n):
        nonlocal pos
        if pos + n > len(data) - CHECKSUM_BYTES:
            _fail("the model is truncated")
        b = data[pos:pos + n]
        pos += n
        return b

    def u8():
        return take(1)[0]

    def u32():
        return struct.unpack("<I", take(4))[0]

    def f32():
        return struct.unpack("<f", take(4))[0]

    def string():
        return take(u32()).decode("utf-8")

    def floats(n, shape):
        return np.frombuffer(take(4 * n), dtype="<f4").astype(np.float32).reshape(shape)

    version = u32()
    if version != FORMAT_VERSION:
        _fail(f"the model has format version {version}; this tool reads version {FORMAT_VERSION}")
    (total,) = struct.unpack("<Q", take(8))
    if total != len(data):
        _fail(f"the model says it is {total} bytes long but is {len(data)}")
    if hashlib.sha256(data[:-CHECKSUM_BYTES]).digest() != data[-CHECKSUM_BYTES:]:
        _fail("the model's SHA-256 checksum does not match its bytes")
    spec = {"source": {"relation": string(), "id_column": string(), "month_column": string()}}
    spec["window_months"] = u32()
    flags, start = u32(), u32()
    spec["history"] = ({"mode": "from_start_month", "start_month": f"{start // 12:04d}-{start % 12 + 1:02d}"}
                       if flags & FLAG_FROM_START_MONTH else {"mode": "sliding_window"})
    spec["include_product_adds"] = bool(flags & FLAG_PRODUCT_ADDS)
    H, L, P = u32(), u32(), u32()
    spec["products"] = [string() for _ in range(P)]
    kinds, roles, transforms = ({v: k for k, v in d.items()} for d in (KINDS, ROLES, TRANSFORMS))
    spec["features"] = []
    for _ in range(u32()):
        f = {"column": string(), "kind": kinds[u8()], "role": roles[u8()]}
        transform, missing = u8(), u8()
        mean, stddev, clip_min, clip_max = f32(), f32(), f32(), f32()
        vocabulary = [string() for _ in range(u32())]
        if f["kind"] == "numeric":
            f.update(transform=transforms[transform], mean=mean, stddev=stddev, clip_min=clip_min,
                     clip_max=clip_max, missing_indicator=bool(missing))
        else:
            f["vocabulary"] = vocabulary
        spec["features"].append(f)
    W, S = recsys_step_width(spec), static_width(spec)
    layers = []
    for k in range(L):
        in_w = W if k == 0 else H
        layers.append((floats(4 * H * in_w, (4 * H, in_w)), floats(4 * H * H, (4 * H, H)),
                       floats(4 * H, (4 * H,)), floats(4 * H, (4 * H,))))
    head_w, head_b = floats(P * (H + S), (P, H + S)), floats(P, (P,))
    if pos != len(data) - CHECKSUM_BYTES:
        _fail(f"{len(data) - CHECKSUM_BYTES - pos} bytes are left over after the weights")
    return spec, layers, head_w, head_b


def write_model(path, lstm, head, spec):
    """Exports and writes the model file; returns the number of bytes written."""
    data = export_model(lstm, head, spec)
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


# ---------------------------------------------------------------------------------------
# Checkpoints


def modules_from_state_dict(state_dict):
    """Builds (lstm, head) from a state dict with lstm.* and head.* keys."""
    import torch

    if any(k.startswith("lstm.") and k.endswith("_reverse") for k in state_dict):
        _fail("the checkpoint holds a bidirectional LSTM; recsys supports unidirectional LSTMs only")
    for key in ("lstm.weight_ih_l0", "lstm.weight_hh_l0", "head.weight", "head.bias"):
        if key not in state_dict:
            _fail(f"the checkpoint's state_dict has no {key!r} "
                  f"(keys: {', '.join(sorted(state_dict)) or 'none'})")
    layers = 0
    while f"lstm.weight_ih_l{layers}" in state_dict:
        layers += 1
    w_hh = state_dict["lstm.weight_hh_l0"]
    hidden = int(w_hh.shape[1])
    input_size = int(state_dict["lstm.weight_ih_l0"].shape[1])
    head_w = state_dict["head.weight"]
    lstm = torch.nn.LSTM(input_size, hidden, num_layers=layers, bias=True)
    head = torch.nn.Linear(int(head_w.shape[1]), int(head_w.shape[0]), bias=True)
    try:
        lstm.load_state_dict({k[len("lstm."):]: v for k, v in state_dict.items() if k.startswith("lstm.")})
        head.load_state_dict({k[len("head."):]: v for k, v in state_dict.items() if k.startswith("head.")})
    except RuntimeError as e:
        _fail(f"the checkpoint does not describe an LSTM with a Linear head: {e}")
    return lstm, head


def load_checkpoint(path):
    import torch

    ckpt = torch.load(path, map_location="cpu")
    if isinstance(ckpt, dict) and isinstance(ckpt.get("state_dict"), dict):
        ckpt = ckpt["state_dict"]
    if not isinstance(ckpt, dict):
        _fail(f"{path} holds a {type(ckpt).__name__}; expected a dict with a state_dict")
    return modules_from_state_dict(ckpt)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="torch.save'd dict with a state_dict")
    parser.add_argument("--spec", required=True, help="JSON spec: source, window, products, features")
    parser.add_argument("--out", required=True, help="model file to write (.rsm)")
    args = parser.parse_args(argv)
    try:
        with open(args.spec, encoding="utf-8") as f:
            spec = json.load(f)
        lstm, head = load_checkpoint(args.checkpoint)
        n = write_model(args.out, lstm, head, spec)
    except ExportError as e:
        print(f"export_torch_model: {e}", file=sys.stderr)
        return 1
    except (OSError, json.JSONDecodeError) as e:
        print(f"export_torch_model: {e}", file=sys.stderr)
        return 1
    print(f"wrote {args.out}: {n} bytes, hidden {lstm.hidden_size}, {lstm.num_layers} layer(s), "
          f"{head.out_features} products")
    return 0


if __name__ == "__main__":
    sys.exit(main())
