#!/usr/bin/env python3
"""End-to-end routing benchmarks with `fastpath bench` against `fastpath mock` deployments
(everything on 127.0.0.1; python3 standard library only).

1. hedging: two mock deployments with the heavy-tailed `tail` profile (5% of requests 10x slower);
   one gateway without hedging, one with hedging (delay = the deployment's p95 TTFT, budget 10%).
   Reports p50/p99 TTFT of each and the extra upstream requests (hedges / requests).
2. auto: a mixed workload (the queries of ../shared/data/routing-queries.jsonl) sent as
   `model: auto` (routed by the complexity scorer to small/mid/strong mock profiles) versus
   everything on the strongest model.

  bench/routing/bench_routing.py --fastpath build/release/fastpath [--requests 600] [--concurrency 4]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request


def start(cmd, pattern, stream="stdout"):
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    src = p.stdout if stream == "stdout" else p.stderr
    for _ in range(200):
        line = src.readline()
        if not line:
            break
        m = re.search(pattern, line)
        if m:
            return p, int(m.group(1))
    p.kill()
    raise RuntimeError(f"no port from {' '.join(cmd)}")


def mock(fp, profile, seed):
    return start([fp, "mock", "--host", "127.0.0.1", "--port", "0", "--profile", profile, "--seed", str(seed),
                  "--threads", "1"], r"listening [\d.]+:(\d+)")


def gateway(fp, cfg_text):
    f = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    f.write(cfg_text)
    f.close()
    p, port = start([fp, "serve", "--config", f.name], r"listening on http://[\d.]+:(\d+)", stream="stderr")
    os.unlink(f.name)
    return p, port


def bench(fp, port, model, n, c, prompts=None):
    cmd = [fp, "bench", "--url", f"http://127.0.0.1:{port}/v1", "--model", model, "--stream", "-c", str(c),
           "-n", str(n), "--json", "--max-tokens", "20"]
    if prompts:
        cmd += ["--prompts", prompts]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def metric(port, name):
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total += float(line.rsplit(" ", 1)[1])
    return total


HEAD = "server: {host: 127.0.0.1, port: 0, threads: 1}\nlog: {access_log: false, level: info}\n"


def run_hedging(fp, n, c):
    procs = []
    try:
        m1, p1 = mock(fp, "tail", 11)
        m2, p2 = mock(fp, "tail", 22)
        procs += [m1, m2]
        providers = (f"providers:\n  - {{name: t1, kind: openai, base_url: \"http://127.0.0.1:{p1}/v1\"}}\n"
                     f"  - {{name: t2, kind: openai, base_url: \"http://127.0.0.1:{p2}/v1\"}}\n"
                     "models:\n  - {name: m, deployments: [{provider: t1}, {provider: t2}]}\n")
        base = HEAD + providers + "routing:\n  models: [{name: m, deployments: [t1, t2]}]\n"
        hedged = base + ("  hedging: {enabled: true, delay_ms: 0, default_delay_ms: 100, budget_ratio: 0.1,"
                         " budget_burst: 5}\n")
        g1, port1 = gateway(fp, base)
        g2, port2 = gateway(fp, hedged)
        procs += [g1, g2]
        rows = {}
        for name, port in (("no hedging", port1), ("hedging", port2)):
            bench(fp, port, "m", max(50, n // 10), c)  # warm-up: EWMAs and the p95 TTFT per deployment
            h0 = metric(port, "fastpath_routing_hedges_total")
            a0 = metric(port, "fastpath_routing_attempts_total")
            r0 = metric(port, "fastpath_routing_requests_total")
            r = bench(fp, port, "m", n, c)
            hedges = metric(port, "fastpath_routing_hedges_total") - h0
            attempts = metric(port, "fastpath_routing_attempts_total") - a0
            reqs = metric(port, "fastpath_routing_requests_total") - r0
            rows[name] = (r, hedges, attempts, reqs)
        print(f"## hedging: 2 x `fastpath mock --profile tail`, fastpath bench --stream -c {c} -n {n}")
        print("| gateway | requests | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms | TTFT max ms | upstream attempts | extra upstream |")
        print("|---|---|---|---|---|---|---|---|")
        for name, (r, hedges, attempts, reqs) in rows.items():
            t = r["ttft_us"]
            extra = (attempts - reqs) / reqs if reqs else 0
            print(f"| {name} | {r.get('requests', reqs):.0f} | {t['p50']/1000:.1f} | {t['p90']/1000:.1f} | {t['p99']/1000:.1f} "
                  f"| {t['max']/1000:.1f} | {attempts:.0f} | {100*extra:.1f}% (hedges {hedges:.0f}) |")
        a, b = rows["no hedging"][0]["ttft_us"], rows["hedging"][0]["ttft_us"]
        print(f"\np99 TTFT ratio (no hedging / hedging): {a['p99']/b['p99']:.2f}x; "
              f"p50 ratio {a['p50']/b['p50']:.2f}x\n")
    finally:
        for p in procs:
            p.kill()


def run_auto(fp, queries, n, c):
    procs = []
    try:
        ms, ps = mock(fp, "gpt-4o-mini", 1)
        mm, pm = mock(fp, "claude-3-haiku", 2)
        mx, px = mock(fp, "gpt-4o", 3)
        procs += [ms, mm, mx]
        cfg = HEAD + (
            f"providers:\n  - {{name: small, kind: openai, base_url: \"http://127.0.0.1:{ps}/v1\"}}\n"
            f"  - {{name: mid, kind: openai, base_url: \"http://127.0.0.1:{pm}/v1\"}}\n"
            f"  - {{name: strong, kind: openai, base_url: \"http://127.0.0.1:{px}/v1\"}}\n"
            "models:\n  - {name: small-model, provider: small}\n  - {name: mid-model, provider: mid}\n"
            "  - {name: strong-model, provider: strong}\n"
            "routing:\n  aliases:\n    - name: auto\n      tiers:\n"
            "        - {name: small, model: small-model, below: 0.3}\n"
            "        - {name: mid, model: mid-model, up_to: 0.7}\n"
            "        - {name: strong, model: strong-model}\n")
        g, port = gateway(fp, cfg)
        procs.append(g)
        rows = [json.loads(l) for l in open(queries, encoding="utf-8") if l.strip()]
        tmp = {}
        for model in ("auto", "strong-model"):
            f = tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False)
            for r in rows:
                f.write(json.dumps({"model": model, "stream": True, "max_tokens": 20,
                                    "messages": [{"role": "user", "content": r["query"]}]}) + "\n")
            f.close()
            tmp[model] = f.name
        res = {}
        for model in ("strong-model", "auto"):
            bench(fp, port, model, 50, c, tmp[model])
            d0 = {t: metric(port, f'fastpath_routing_decisions_total{{alias="auto",tier="{t}"}}')
                  for t in ("small", "mid", "strong")}
            res[model] = bench(fp, port, model, n, c, tmp[model])
        for f in tmp.values():
            os.unlink(f)
        print(f"## model: auto vs everything on the strongest model ({len(rows)} mixed queries, "
              f"mock profiles gpt-4o-mini / claude-3-haiku / gpt-4o, -c {c} -n {n})")
        print("| model | TTFT p50 ms | TTFT p99 ms | e2e p50 ms | e2e p99 ms |")
        print("|---|---|---|---|---|")
        for model, r in res.items():
            t, e = r["ttft_us"], r.get("e2e_us", r.get("latency_us", {}))
            print(f"| {model} | {t['p50']/1000:.1f} | {t['p99']/1000:.1f} | {e.get('p50', 0)/1000:.1f} | {e.get('p99', 0)/1000:.1f} |")
        a, b = res["strong-model"], res["auto"]
        ea, eb = a.get("e2e_us", {}), b.get("e2e_us", {})
        print(f"\nmedian TTFT ratio strongest/auto: {a['ttft_us']['p50']/b['ttft_us']['p50']:.2f}x"
              + (f"; median e2e ratio {ea['p50']/eb['p50']:.2f}x" if ea and eb else ""))
    finally:
        for p in procs:
            p.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fastpath", default="build/release/fastpath")
    ap.add_argument("--queries", default="../shared/data/routing-queries.jsonl")
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--only", choices=["hedging", "auto"])
    a = ap.parse_args()
    print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    if a.only in (None, "hedging"):
        run_hedging(a.fastpath, a.requests, a.concurrency)
    if a.only in (None, "auto"):
        run_auto(a.fastpath, a.queries, a.requests, a.concurrency)


if __name__ == "__main__":
    sys.exit(main())
