#!/usr/bin/python3
"""torch beside recsys's reduced-precision scoring, on the same weights and inputs.

    reduced_precision_torch.py --dir DIR [--seconds S] --json OUT

DIR is what `RECSYS_PRECISION_DUMP=DIR build/reduced_precision_bench` wrote (weights, batch-1024
inputs, recsys's scores in fp32, bf16 and int8). Builds torch.nn.LSTM + Linear with those
weights, checks that torch float32 matches recsys float32 (the oracle: within 1e-5), then
quantizes it with torch.ao.quantization.quantize_dynamic (int8 weights of LSTM and Linear,
activations quantized per call, the x86 fbgemm backend) and measures, with one thread:
customers/s at batch 1024 and batch 1 for both, and the largest |score difference| of each
against torch float32 (and of recsys bf16 / int8 against recsys float32, for the table).
"""

import argparse
import json
import os
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


class Recommender(torch.nn.Module):
    def __init__(self, W, H, S, P):
        super().__init__()
        self.lstm = torch.nn.LSTM(W, H, num_layers=1, bias=True)
        self.head = torch.nn.Linear(H + S, P)

    def forward(self, steps, statics):  # steps: T x B x W (time-major), statics: B x S
        _, (h_n, _) = self.lstm(steps)
        return torch.sigmoid(self.head(torch.cat([h_n[-1], statics], dim=1)))


def floats(d, name, shape):
    return np.fromfile(os.path.join(d, name), dtype="<f4").reshape(shape)


def rate(fn, batch, seconds):
    fn()  # warm up
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n * batch / elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    d = args.dir
    with open(os.path.join(d, "manifest.json")) as f:
        m = json.load(f)
    T, B, W, H, S, P = (m[k] for k in ("T", "B", "W", "H", "S", "P"))
    model = Recommender(W, H, S, P)
    with torch.no_grad():
        model.lstm.weight_ih_l0.copy_(torch.from_numpy(floats(d, "w_ih.f32", (4 * H, W))))
        model.lstm.weight_hh_l0.copy_(torch.from_numpy(floats(d, "w_hh.f32", (4 * H, H))))
        model.lstm.bias_ih_l0.copy_(torch.from_numpy(floats(d, "b_ih.f32", (4 * H,))))
        model.lstm.bias_hh_l0.copy_(torch.from_numpy(floats(d, "b_hh.f32", (4 * H,))))
        model.head.weight.copy_(torch.from_numpy(floats(d, "dense_w.f32", (P, H + S))))
        model.head.bias.copy_(torch.from_numpy(floats(d, "dense_b.f32", (P,))))
    model.eval()
    steps = torch.from_numpy(floats(d, "steps.f32", (T, B, W)).copy())
    statics = torch.from_numpy(floats(d, "statics.f32", (B, S)).copy())
    recsys = {p: floats(d, f"scores_{p}.f32", (B, P)) for p in ("fp32", "bf16", "int8")}

    with torch.no_grad():
        ref = model(steps, statics).numpy()
        one_steps, one_statics = steps[:, :1].contiguous(), statics[:1].contiguous()
        out = {
            "torch_version": torch.__version__,
            "quantized_engine": torch.backends.quantized.engine,
            "recsys_kernels": m.get("kernels", {}),
            "torch_fp32_vs_recsys_fp32_max_abs_diff": float(np.abs(ref - recsys["fp32"]).max()),
            "recsys_bf16_max_abs_diff": float(np.abs(recsys["bf16"] - recsys["fp32"]).max()),
            "recsys_int8_max_abs_diff": float(np.abs(recsys["int8"] - recsys["fp32"]).max()),
            "torch_fp32_customers_per_s_b1024": rate(lambda: model(steps, statics), B, args.seconds),
            "torch_fp32_customers_per_s_b1": rate(lambda: model(one_steps, one_statics), 1, args.seconds),
        }
        # Eager-mode dynamic quantization is deprecated in torch 2.x (moving to torchao) and may be
        # gone from a later release: its absence is reported, not fatal, so the float32 oracle
        # and rates above still come out.
        try:
            quantize_dynamic = getattr(torch.ao.quantization, "quantize_dynamic", None)
            if quantize_dynamic is None:
                quantize_dynamic = torch.quantization.quantize_dynamic
            quantized = quantize_dynamic(model, {torch.nn.LSTM, torch.nn.Linear}, dtype=torch.qint8)
            q = quantized(steps, statics).numpy()
            out["torch_dynamic_int8_max_abs_diff"] = float(np.abs(q - ref).max())
            out["torch_dynamic_int8_customers_per_s_b1024"] = rate(lambda: quantized(steps, statics), B, args.seconds)
            out["torch_dynamic_int8_customers_per_s_b1"] = rate(lambda: quantized(one_steps, one_statics), 1,
                                                                args.seconds)
        except Exception as e:  # noqa: BLE001 - any failure of the optional comparison is reported
            out["torch_dynamic_int8_error"] = f"{type(e).__name__}: {e}"
    with open(args.json, "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))
    if out["torch_fp32_vs_recsys_fp32_max_abs_diff"] > 1e-5:
        raise SystemExit("recsys float32 does not match torch float32 within 1e-5 on these weights")


if __name__ == "__main__":
    main()
