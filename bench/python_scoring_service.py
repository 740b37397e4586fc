#!/usr/bin/python3
"""Benchmark (iii): the scoring service a bank would build beside the database.

    python_scoring_service.py --dsn DSN --dir DIR --port PORT

A threaded HTTP server (http.server.ThreadingHTTPServer, HTTP/1.1 keep-alive, one psycopg2
connection per thread). GET /recommend?id=N fetches the customer's last T+1 snapshots by index
(the same query shape as recsys.recommend), encodes them with the model's spec (DIR/spec.json:
product flags, "added" flags, dynamic features per step; static features from the last month;
numeric: clip, transform, standardise, missing indicator; categorical: one-hot plus an unknown
slot, see docs/model-format.md), runs the torch model (DIR/bench_v1.pt, the weights registered
as 'bench') on a batch of 1 with 1 torch thread, and returns the top 7 products not already
held as JSON. It is a benchmark stand-in doing comparable work; its scores are not checked
against recsys (tests/integration/test_torch_parity.py does that for the database).
"""

import argparse
import json
import math
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import psycopg2  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference  # noqa: E402

torch.set_num_threads(1)


class Encoder:
    def __init__(self, spec):
        self.spec = spec
        self.T = spec["window_months"]
        self.products = spec["products"]
        self.P = len(self.products)
        self.adds = spec.get("include_product_adds", True)
        self.dynamic = [f for f in spec["features"] if f["role"] == "dynamic"]
        self.static = [f for f in spec["features"] if f["role"] == "static"]
        self.W = self.P * (2 if self.adds else 1) + sum(self.width(f) for f in self.dynamic)
        self.S = sum(self.width(f) for f in self.static)
        cols = list(self.products) + [f["column"] for f in spec["features"]]
        self.columns = list(dict.fromkeys(cols))
        self.col_index = {c: i for i, c in enumerate(self.columns)}
        src = spec["source"]
        select = ", ".join(f'"{c}"' for c in self.columns)
        self.query = (f'SELECT {select} FROM {src["relation"]} WHERE "{src["id_column"]}" = %s '
                      f'ORDER BY "{src["month_column"]}" DESC LIMIT {self.T + 1}')

    @staticmethod
    def width(f):
        if f["kind"] == "categorical":
            return len(f["vocabulary"]) + 1
        return 2 if f.get("missing_indicator", True) else 1

    def encode_feature(self, f, value, out, pos):
        if f["kind"] == "categorical":
            voc = f["vocabulary"]
            try:
                out[pos + voc.index(value)] = 1.0
            except ValueError:
                out[pos + len(voc)] = 1.0
            return pos + len(voc) + 1
        mi = f.get("missing_indicator", True)
        if value is None:
            if mi:
                out[pos + 1] = 1.0
        else:
            lo, hi = f.get("clip_min"), f.get("clip_max")
            x = min(max(float(value), -math.inf if lo is None else lo), math.inf if hi is None else hi)
            if f.get("transform") == "log1p":
                x = math.log1p(max(x, 0.0))
            out[pos] = (x - f.get("mean", 0.0)) / f.get("stddev", 1.0)
        return pos + (2 if mi else 1)

    def encode(self, rows):
        """rows: newest first, up to T + 1. Returns steps (T x 1 x W), statics (1 x S), held (P)."""
        rows = rows[::-1]  # oldest first
        steps = np.zeros((self.T, 1, self.W), dtype=np.float32)
        window = rows[-self.T:]
        first = self.T - len(window)  # missing months are all-zero steps at the start
        prev = rows[-self.T - 1] if len(rows) > self.T else None
        for t, row in enumerate(window):
            s = steps[first + t, 0]
            for p in range(self.P):
                s[p] = row[p]
                if self.adds and prev is not None and row[p] == 1 and prev[p] == 0:
                    s[self.P + p] = 1.0
            pos = self.P * (2 if self.adds else 1)
            for f in self.dynamic:
                pos = self.encode_feature(f, row[self.col_index[f["column"]]], s, pos)
            prev = row
        statics = np.zeros((1, self.S), dtype=np.float32)
        pos = 0
        for f in self.static:
            pos = self.encode_feature(f, rows[-1][self.col_index[f["column"]]], statics[0], pos)
        held = np.array(rows[-1][: self.P], dtype=bool)
        return torch.from_numpy(steps), torch.from_numpy(statics), held


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stalls

    def log_message(self, *args):  # no per-request logging
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        srv = self.server
        url = urlparse(self.path)
        try:
            cid = int(parse_qs(url.query)["id"][0])
        except (KeyError, ValueError):
            return self.reply(400, {"error": "need ?id=<customer id>"})
        conn = getattr(srv.local, "conn", None)
        if conn is None:
            conn = srv.local.conn = psycopg2.connect(srv.dsn)
            conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(srv.enc.query, (cid,))
            rows = cur.fetchall()
        if not rows:
            return self.reply(404, {"error": f"customer {cid} has no snapshot"})
        steps, statics, held = srv.enc.encode(rows)
        with torch.no_grad():
            scores = srv.model(steps, statics)[0].numpy().copy()
        scores[held] = -1.0
        top = np.argsort(-scores, kind="stable")[:7]
        self.reply(200, {"customer_id": cid, "products": [srv.enc.products[i] for i in top],
                         "scores": [float(scores[i]) for i in top]})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dsn", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--port", type=int, default=55460)
    args = ap.parse_args()
    spec = json.load(open(os.path.join(args.dir, "spec.json")))
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    srv.dsn = args.dsn
    srv.enc = Encoder(spec)
    srv.model = torch_reference.load(os.path.join(args.dir, "bench_v1.pt"))
    srv.local = threading.local()
    print(f"python_scoring_service: listening on 127.0.0.1:{args.port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
