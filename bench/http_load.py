#!/usr/bin/python3
"""HTTP load generator for bench/python_scoring_service.py.

    http_load.py --port PORT --clients C --seconds S --first-id A --customers N --json OUT

Each client is its own process (so the generator is not serialised on one GIL) holding one
keep-alive HTTP/1.1 connection and issuing GET /recommend?id=<random id in [A, A + N)> back to
back for S seconds. Writes {"clients", "requests", "errors", "tps", "p50_ms", "p99_ms"}.
"""

import argparse
import http.client
import json
import multiprocessing as mp
import random
import time


def client(i, port, seconds, first, n, start_at, q):
    rng = random.Random(1000 + i)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    lat, errors = [], 0
    while time.time() < start_at:
        time.sleep(0.001)
    end = time.perf_counter() + seconds
    while True:
        t0 = time.perf_counter()
        if t0 >= end:
            break
        try:
            conn.request("GET", f"/recommend?id={rng.randrange(first, first + n)}")
            r = conn.getresponse()
            r.read()
            if r.status != 200:
                errors += 1
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            continue
        lat.append(time.perf_counter() - t0)
    q.put((lat, errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--first-id", type=int, default=15889)
    ap.add_argument("--customers", type=int, required=True)
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    q = mp.Queue()
    start_at = time.time() + 0.5
    procs = [mp.Process(target=client, args=(i, args.port, args.seconds, args.first_id, args.customers, start_at, q))
             for i in range(args.clients)]
    for p in procs:
        p.start()
    lat, errors = [], 0
    for _ in procs:
        l, e = q.get()
        lat.extend(l)
        errors += e
    for p in procs:
        p.join()
    lat.sort()
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1e3 if lat else float("nan")  # noqa: E731
    out = {"clients": args.clients, "requests": len(lat), "errors": errors, "tps": len(lat) / args.seconds,
           "p50_ms": pct(0.50), "p99_ms": pct(0.99)}
    with open(args.json, "w") as f:
        json.dump(out, f)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
