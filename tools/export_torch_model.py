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

Each step's input is [product flags (P), product adds (P, when include_product_adds),
the encoded dynamic features in spec order]; the static input is the encoded static
features in spec order. A numeric feature encodes to 1 value, plus 1 missing indicator
when missing_indicator is true; a categorical one to len(vocabulary) + 1 values (one-hot,
the last slot for unknown or NULL). The LSTM's input_size must equal that step width.

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
``write_model(path, lstm, head, spec)`` do the same without a checkpoint file.
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


def encoded_width(feature):
    if feature.get("kind", "numeric") == "categorical":
        return len(feature["vocabulary"]) + 1
    return 2 if feature.get("missing_indicator", True) else 1


def step_width(spec):
    """Per-step LSTM input width: products, optional product adds, encoded dynamic features."""
    w = len(spec["products"]) * (2 if spec.get("include_product_adds", True) else 1)
    return w + sum(encoded_width(f) for f in spec.get("features", []) if f["role"] == "dynamic")


def static_width(spec):
    """Width of the static vector concatenated with h_T: encoded static features."""
    return sum(encoded_width(f) for f in spec.get("features", []) if f["role"] == "static")


# ---------------------------------------------------------------------------------------
# Torch modules


def _tensor_bytes(tensor, what, shape):
    import torch

    t = tensor.detach().to(device="cpu", dtype=torch.float32).contiguous()
    if tuple(t.shape) != tuple(shape):
        _fail(f"{what} has shape {tuple(t.shape)}, expected {tuple(shape)}")
    if not bool(torch.isfinite(t).all()):
        _fail(f"{what} contains NaN or infinite values")
    return t.numpy().astype("<f4", copy=False).tobytes()


def _check_modules(lstm, head, spec):
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
    H, L = lstm.hidden_size, lstm.num_layers
    _count(H, "LSTM hidden_size", 1, MAX_HIDDEN)
    _count(L, "LSTM num_layers", 1, MAX_LAYERS)
    W, S, P = step_width(spec), static_width(spec), len(spec["products"])
    if lstm.input_size != W:
        adds = spec["include_product_adds"]
        _fail(f"the LSTM's input_size is {lstm.input_size} but the spec's step width is {W} "
              f"({P} products{' x 2 with product adds' if adds else ''} + "
              f"{W - P * (2 if adds else 1)} for the encoded dynamic features)")
    if head.in_features != H + S:
        _fail(f"the head's in_features is {head.in_features} but hidden + static width is "
              f"{H} + {S} = {H + S}")
    if head.out_features != P:
        _fail(f"the head's out_features is {head.out_features} but the spec lists {P} products")
    return H, L, W, S, P


def export_model(lstm, head, spec):
    """Returns the recsys model bytes for an LSTM, its Linear head and the spec (a dict in
    the shape documented above). Raises ExportError when they disagree."""
    spec_in = spec
    spec = normalize_spec(spec_in)
    H, L, W, S, P = _check_modules(lstm, head, spec)
    params = (sum(4 * H * (W if k == 0 else H) + 4 * H * H + 8 * H for k in range(L)) + P * (H + S) + P)
    for key, value in (("hidden", H), ("layers", L), ("step_width", W), ("static_width", S),
                       ("parameter_count", params)):
        if key in spec_in and spec_in[key] != value:
            _fail(f"the spec records {key} = {spec_in[key]!r} but the torch modules give {value}")

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
    for k in range(L):
        in_w = W if k == 0 else H
        out.extend(_tensor_bytes(getattr(lstm, f"weight_ih_l{k}"), f"lstm.weight_ih_l{k}", (4 * H, in_w)))
        out.extend(_tensor_bytes(getattr(lstm, f"weight_hh_l{k}"), f"lstm.weight_hh_l{k}", (4 * H, H)))
        out.extend(_tensor_bytes(getattr(lstm, f"bias_ih_l{k}"), f"lstm.bias_ih_l{k}", (4 * H,)))
        out.extend(_tensor_bytes(getattr(lstm, f"bias_hh_l{k}"), f"lstm.bias_hh_l{k}", (4 * H,)))
    out.extend(_tensor_bytes(head.weight, "head.weight", (P, H + S)))
    out.extend(_tensor_bytes(head.bias, "head.bias", (P,)))

    total = len(out) + CHECKSUM_BYTES
    out[12:20] = struct.pack("<Q", total)
    out.extend(hashlib.sha256(bytes(out)).digest())
    return bytes(out)


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
    parser = argparse.ArgumentParser(description="Export a PyTorch LSTM recommender to a recsys model file.")
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
