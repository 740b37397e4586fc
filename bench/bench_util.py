#!/usr/bin/python3
"""Helpers for bench/run_all.sh.

    bench_util.py pgbench-log PREFIX          -> "p50_ms p99_ms count" from pgbench -l logs PREFIX*
    bench_util.py gbench JSON                 -> key value lines from lstm_scoring_bench's JSON
    bench_util.py precision JSON              -> key value lines from reduced_precision_bench's JSON
    bench_util.py memory DSN MODEL ID         -> key value lines: backend VmRSS/RssAnon before/after
    bench_util.py report RESULTS              -> the final Markdown table
"""

import glob
import json
import sys


def pgbench_log(prefix):
    lat = []
    for path in glob.glob(prefix + "*"):
        with open(path) as f:
            for line in f:
                parts = line.split()
                # client_id transaction_no time script_no time_epoch time_us [schedule_lag]
                if len(parts) >= 6 and parts[2].isdigit():
                    lat.append(int(parts[2]) / 1000.0)
    lat.sort()
    if not lat:
        print("nan nan 0")
        return
    pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]  # noqa: E731
    print(f"{pct(0.5):.3f} {pct(0.99):.3f} {len(lat)}")


def gbench(path):
    data = json.load(open(path))
    best, best_name, flops = 0.0, "", 0.0
    sgemm, sgemm_name = 0.0, ""
    for b in data["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration":
            continue
        if b["name"].startswith("BM_LstmForward"):
            flops = b["flops_per_customer"]
            if b["customers_per_s"] > best:
                best, best_name = b["customers_per_s"], b["name"]
            print(f"b_{b['name'].split('/')[1]} {b['customers_per_s']:.1f}")
        elif b["name"].startswith("BM_Sgemm"):
            print(f"sgemm_{'x'.join(b['name'].split('/')[1:4])} {b['gflops']:.3f}")
            if b["gflops"] > sgemm:
                sgemm, sgemm_name = b["gflops"], b["name"]
    print(f"b_best {best:.1f}")
    print(f"b_best_batch {best_name.split('/')[1]}")
    print(f"flops_per_customer {flops:.0f}")
    print(f"sgemm_gflops {sgemm:.3f}")
    print(f"sgemm_shape {'x'.join(sgemm_name.split('/')[1:4])}")
    print(f"d_bound {sgemm * 1e9 / flops:.1f}")


def precision(path):
    # BM_Score/<precision>/<kernel>/<batch> -> e_<precision>_<kernel>_b<batch> (customers/s),
    # ..._diff (largest |score - float32 score|), ..._kernel (what ran); skipped ones say so.
    for b in json.load(open(path))["benchmarks"]:
        if b.get("run_type", "iteration") != "iteration" or not b["name"].startswith("BM_Score/"):
            continue
        parts = [p for p in b["name"].split("/") if p != "real_time" and ":" not in p]
        batch = parts[-1]
        key = "e_" + "_".join(parts[1:-1]) + "_b" + batch
        if b.get("error_occurred"):
            print(f"{key} skipped: {b.get('error_message', '')}")
            continue
        print(f"{key} {b['customers_per_s']:.1f}")
        print(f"{key}_diff {b['max_abs_diff']:.3g}")
        if b.get("label"):
            print(f"{key}_kernel {b['label']}")


def memory(dsn, model, cid):
    import psycopg2

    def status(pid):
        out = {}
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon"):
                    out[k] = int(v.split()[0])  # kB
        return out

    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM santander.snapshots WHERE ncodpers = %s", (cid,))
    before = status(pid)
    cur.execute("SELECT recsys.recommend(%s, 7, %s)", (cid, model))
    after1 = status(pid)
    for i in range(200):
        cur.execute("SELECT recsys.recommend(%s, 7, %s)", (cid + i, model))
    after = status(pid)
    conn.close()
    for k in ("VmRSS", "RssAnon"):
        print(f"mem_{k}_before_kb {before[k]}")
        print(f"mem_{k}_after1_kb {after1[k]}")
        print(f"mem_{k}_after_kb {after[k]}")
        print(f"mem_{k}_delta_kb {after[k] - before[k]}")


def report(path):
    r = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition(" ")
            if k:
                r[k] = v

    def num(k):
        try:
            return float(r[k])
        except (KeyError, ValueError):
            return float("nan")

    def fmt(x, unit=""):
        if isinstance(x, str):
            return x
        if x != x:
            return "n/a"
        if abs(x) >= 100:
            s = f"{x:,.0f}"
        elif abs(x) >= 10:
            s = f"{x:.1f}"
        else:
            s = f"{x:.2f}"
        return s + (f" {unit}" if unit else "")

    rows = []

    def row(measure, value, unit="", ref=None, ref_label="", ratio=None):
        ref_s = "" if ref is None else (fmt(ref, unit) + (f" ({ref_label})" if ref_label else ""))
        if ratio is None and ref is not None and not isinstance(value, str) and not isinstance(ref, str) and ref:
            ratio = value / ref
        if ratio is None:
            ratio_s = ""
        elif isinstance(ratio, str):
            ratio_s = ratio
        elif ratio == ratio and 0 < ratio < 0.1:
            ratio_s = f"{ratio:.4f}x (1/{1 / ratio:,.0f})"
        else:
            ratio_s = f"{ratio:.2f}x"
        rows.append(f"| {measure} | {fmt(value, unit)} | {ref_s} | {ratio_s} |")

    N = int(num("customers"))
    c1, c64, c2 = num("c_t1_b1024"), num("c_t1_b64"), num("c_t2_b1024")
    row(f"data: generate {N:,} customers, up to 17 months ({int(num('rows')):,} rows, 2 connections)", num("load_s"), "s",
        ratio="" if num("load_s") != num("load_s") else f"{num('rows') / num('load_s'):,.0f} rows/s")
    row("(a) refresh_recommendations('bench'), 1 connection, no workers", num("a1_cps"), "cust/s", c1, "(c) torch 1 thr b1024")
    cpus = int(num("cpus")) if num("cpus") == num("cpus") else 0
    row("(a) full refresh through one SQL call, all cores", num("a3_cps"), "cust/s", num("b_best") * cpus,
        f"(b) core loop x {cpus} cores")
    row("(a) score_all shards, 2 connections", num("a2_cps"), "cust/s", c2, "(c) torch 2 thr b1024")
    row(f"(b) core LSTM loop, best batch {r.get('b_best_batch', '?')}, 1 thread", num("b_best"), "cust/s", c1,
        "(c) torch 1 thr b1024")
    row("(b) vs (d)", num("b_best"), "cust/s", num("d_bound"), "(d) sgemm bound")
    row("(c) torch no_grad, 1 thread, batch 64", c64, "cust/s")
    row("(c) torch no_grad, 1 thread, batch 1024", c1, "cust/s")
    row("(c) torch no_grad, 2 threads, batch 1024", c2, "cust/s")
    row("(c) torch batch-1 forward latency, 1 thread (p50)", num("c_b1_us_p50"), "us")
    row(f"(d) sgemm bound: {fmt(num('sgemm_gflops'))} GFLOP/s ({r.get('sgemm_shape', '?')}) / "
        f"{num('flops_per_customer') / 1e6:.2f} MFLOP per customer", num("d_bound"), "cust/s")
    for b in ("1024", "1"):
        base = num(f"e_fp32_b{b}")
        for v in ("bf16_auto", "bf16_avx2", "int8_auto", "int8_avx2"):
            kernel = r.get(f"e_{v}_b{b}_kernel", "")
            row(f"(e) core loop {v.replace('_', ' ')} ({kernel}), batch {b}, max |score diff| "
                f"{r.get(f'e_{v}_b{b}_diff', 'n/a')}", num(f"e_{v}_b{b}"), "cust/s", base, "(e) fp32 same run")
        row(f"(e) torch quantize_dynamic int8, batch {b}, max |score diff| {num('e_torch_dynamic_int8_max_abs_diff'):.3g}",
            num(f"e_torch_dynamic_int8_customers_per_s_b{b}"), "cust/s", num(f"e_torch_fp32_customers_per_s_b{b}"),
            "torch fp32 same run")
    row("training, examples/s, recsys vs torch (same step, batches and weights, 1 thread; per CPU second)",
        num("train_recsys_cpu_eps"), "ex/s", num("train_torch_cpu_eps"), "torch training step")
    row("training, examples/s, recsys vs torch (the same runs, per wall second)", num("train_recsys_eps"),
        "ex/s", num("train_torch_eps"), "torch training step")
    row("training, loss curve: largest relative difference recsys vs torch, all steps", r.get("train_loss_maxrel", "n/a"),
        ratio="final (mean of last 10) recsys / torch: " + r.get("train_loss_final", "n/a"))
    row("(a) 1 conn / (c) torch 1 thr b1024", num("a1_cps") / c1 if c1 else float("nan"), "x")
    row("(b) / (c) torch 1 thr b1024", num("b_best") / c1 if c1 else float("nan"), "x")
    row("(b) / (d)", num("b_best") / num("d_bound") if num("d_bound") else float("nan"), "x")
    row("BI query, recommend() per row, 2 parallel workers", num("bi_w2_cps"), "cust/s", num("bi_w0_cps"),
        "same query, no parallel workers")
    row("BI query, recommend_many() over the same customers", num("bi_many_cps"), "cust/s", num("bi_w0_cps"),
        "recommend() per row, serial")
    row("incremental: advance_month, new month for every customer (states + recommendations written)",
        num("inc_advance_s"), "s", num("inc_full_s"), "full recompute of 17 months, rebuild_states")
    row("incremental: customers per second, advance_month", num("inc_advance_n") / num("inc_advance_s")
        if num("inc_advance_s") else float("nan"), "cust/s",
        num("inc_full_n") / num("inc_full_s") if num("inc_full_s") else float("nan"), "full recompute")
    row("refresh, one backend: CPU with writing vs score_all alone (bench/refresh_write_cost.sh)",
        num("refresh_write_refresh_cpu_s"), "s", num("refresh_write_score_cpu_s"), "score_all, nothing written")
    row("replacing a model's recommendations: update in place vs delete + insert (CPU)",
        num("refresh_write_update_cpu_s"), "s", num("refresh_write_delete_insert_cpu_s"), "delete + insert, 0.4.0's refresh")
    for c in ("1", "2", "8"):
        rec, bare, py = num(f"rec_c{c}_tps"), num(f"bare_c{c}_tps"), num(f"py_c{c}_tps")
        row(f"online recommend() TPS, {c} client(s)", rec, "tps", bare, "bare 17-row fetch")
        row(f"online recommend() TPS vs Python service, {c} client(s)", rec, "tps", py, "Python service")
        for p in ("p50", "p99"):
            rl, bl, pl = num(f"rec_c{c}_{p}_ms"), num(f"bare_c{c}_{p}_ms"), num(f"py_c{c}_{p}_ms")
            row(f"online recommend() latency {p}, {c} client(s)", rl, "ms", bl, "bare fetch")
            row(f"online recommend() latency {p} vs Python service, {c} client(s)", rl, "ms", pl, "Python service")
    row("server-side recommend(), DO loop over 10,000 random ids", num("srv_rec_us"), "us/call",
        num("srv_bare_us"), "bare fetch in same loop")
    row(f"64 clients through pgbouncer (transaction pooling, pool {r.get('pgbouncer_pool', '?')}): recommend() TPS",
        num("pgbouncer_c64_tps"), "tps", num("direct_c64_tps"), "64 direct connections")
    row("64 clients through pgbouncer: recommend() latency p99", num("pgbouncer_c64_p99_ms"), "ms",
        num("direct_c64_p99_ms"), "64 direct connections")
    row("promote during pgbench: failed transactions", r.get("promote_failed", "n/a"), "",
        ratio=r.get("promote_check", ""))
    row("backend RssAnon increment after loading 'bench' (1st recommend + 200 calls)",
        num("mem_RssAnon_delta_kb") / 1024, "MiB", num("mem_RssAnon_before_kb") / 1024, "fresh backend")
    row("backend VmRSS increment (incl. shared pages touched)", num("mem_VmRSS_delta_kb") / 1024, "MiB",
        num("mem_VmRSS_before_kb") / 1024, "fresh backend")
    row("100 connections x RssAnon increment", num("mem_RssAnon_delta_kb") * 100 / 1024, "MiB")
    # bench/plproxy_bench.sh: every cluster on this one machine, so overhead and correctness, not scaling.
    row("PL/Proxy: recommend() through recsys_proxy.recommend, 1 client (proxy and 2 shards share the CPUs: "
        "overhead, not scaling)", num("plproxy_proxy_ms"), "ms", num("plproxy_direct_ms"), "direct on the shard",
        ratio=f"+{fmt(num('plproxy_overhead_us'))} us/call")
    row("PL/Proxy: CPU per recommend() through recsys_proxy.recommend (proxy + shard backends, DO loop)",
        num("plproxy_cpu_proxy_us"), "us", num("plproxy_cpu_direct_us"), "direct on the shard",
        ratio=f"+{fmt(num('plproxy_cpu_overhead_us'))} us/call")
    row("PL/Proxy: refresh_recommendations(), 20,000 customers on 2 shards at once (same machine: not scaling)",
        num("plproxy_refresh_sharded_s"), "s", num("plproxy_refresh_single_s"), "one server")
    print("| measure | value | reference | ratio |")
    print("|---|---|---|---|")
    for line in rows:
        print(line)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "pgbench-log":
        pgbench_log(sys.argv[2])
    elif cmd == "gbench":
        gbench(sys.argv[2])
    elif cmd == "precision":
        precision(sys.argv[2])
    elif cmd == "memory":
        memory(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif cmd == "report":
        report(sys.argv[2])
    else:
        sys.exit(f"unknown command {cmd}")
