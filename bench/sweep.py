"""Sweep benchmark against the local stand-ins, with an injected per-call latency.

    python bench/sweep.py --nsgs 100000 [--subscriptions 1000] [--latency-ms 200] [--rules 6]

Prints ``sweep nsgs=N graph_calls=G ingest_calls=I seconds=S peak_rss_mb=M`` for the Resource Graph
sweep (G counts the NSG query's calls and must equal ceil(N/1000); the public-NIC context query's calls are
printed separately as ``context_graph_calls``), then the same sweep through per-subscription ARM listing
and the ratio of the two times.

Memory is measured honestly: the stand-ins (and the 100k seeded NSGs they hold, and every row they
ingest) live in a **separate process**; ``peak_rss_mb`` is this process's own peak RSS (``ru_maxrss``),
which holds only the sweep. ``rss_before_mb`` is the same process after imports, before sweeping; run
10k and 100k and compare: flat memory means the same peak for both.
The Resource Graph sweep honours the real quota (15 queries per 5 s, from the response headers), so at
100k NSGs it includes those waits.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import random
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _nsg(rng: random.Random, sub: str, index: int, rules: int) -> dict[str, Any]:
    name = f"nsg-{index:06d}"
    nsg_id = (f"/subscriptions/{sub}/resourceGroups/rg-{index % 20}/providers/Microsoft.Network/"
              f"networkSecurityGroups/{name}")
    out = []
    for n in range(rules):
        roll = rng.random()
        source = "*" if roll < 0.05 else "Internet" if roll < 0.08 else rng.choice(
            ["10.0.0.0/8", "VirtualNetwork", "AzureLoadBalancer", "203.0.113.0/24", "198.51.100.7"])
        port = rng.choice(["22", "443", "3389", "80", "8080-8090", "2222"])
        out.append({"name": f"r{n}", "properties": {
            "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": port, "sourceAddressPrefix": source,
            "destinationAddressPrefix": "*", "access": "Allow" if rng.random() < 0.8 else "Deny",
            "priority": 100 + 10 * n, "direction": "Inbound"}})
    body: dict[str, Any] = {"id": nsg_id, "name": name, "location": "westeurope",
                            "tags": {"owner": f"team-{index % 40}"}, "properties": {"securityRules": out}}
    if index % 4:
        body["properties"]["subnets"] = [{"id": f"/subscriptions/{sub}/resourceGroups/rg/providers/"
                                               f"Microsoft.Network/virtualNetworks/v/subnets/s{index}"}]
    return body


def serve(conn: Any, nsgs: int, subs: list[str], rules: int, latency_ms: float) -> None:
    """Child process: the stand-ins, seeded; answers 'counts' and 'stop' on the pipe."""
    from localazure.graph import to_graph_row
    from localazure.server import LocalAzure

    azure = LocalAzure(page_size=1000)
    rng = random.Random(7)
    for i in range(nsgs):
        azure.seed_nsg(_nsg(rng, subs[i % len(subs)], i, rules))
    # Resource Graph rows rendered once (the stand-in re-renders every NSG on every query otherwise).
    rows = sorted((to_graph_row(b, azure.tenant_id) for b in azure.nsgs()), key=lambda r: r["id"].lower())
    graph_rows = {"nsg": rows}
    azure.graph._rows = lambda table: graph_rows.get(table, [])  # bench only: skip the per-query re-render
    azure.ingestion.rows.clear()
    for kind in ("graph", "ingest", "arm.list"):
        azure.faults.latency(kind, latency_ms)
    azure.start()
    conn.send({"url": azure.url, "ca": azure.ca_path, "token": azure.token, "dcr": azure.dcr_id})
    while True:
        cmd = conn.recv()
        if cmd == "counts":
            conn.send({k: azure.count(k) for k in ("graph", "ingest", "arm.list")})
            azure.ingestion.clear()  # keep the child's memory bounded between runs
        elif cmd == "reset":
            with azure._req_lock:
                azure.requests.clear()
            conn.send("ok")
        else:
            azure.stop()
            conn.send("bye")
            return


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nsgs", type=int, default=10_000)
    ap.add_argument("--subscriptions", type=int, default=0, help="default: one per 100 NSGs (max 1000)")
    ap.add_argument("--rules", type=int, default=6, help="custom rules per NSG")
    ap.add_argument("--latency-ms", type=float, default=200.0, help="injected per call (graph, list, ingest)")
    ap.add_argument("--skip-per-subscription", action="store_true")
    ap.add_argument("--profile", action="store_true", help="cProfile the Resource Graph sweep")
    args = ap.parse_args()
    n_subs = args.subscriptions or max(1, min(1000, args.nsgs // 100))
    subs = [f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(n_subs)]

    from shared.app.config import Settings
    from shared.app.sweep import run_sweep
    from shared.azure.wiring import build_sweep_deps

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    t0 = time.perf_counter()
    proc = ctx.Process(target=serve, args=(child, args.nsgs, subs, args.rules, args.latency_ms), daemon=True)
    proc.start()
    info = parent.recv()
    print(f"# stand-ins seeded with {args.nsgs} NSGs in {n_subs} subscriptions in a separate process "
          f"({time.perf_counter() - t0:.1f} s); latency {args.latency_ms:g} ms per call", flush=True)
    env = {"NSG_GUARD_AUTH": "local", "NSG_GUARD_LOCAL_TOKEN": info["token"], "NSG_GUARD_CA_BUNDLE": info["ca"],
           "ARM_ENDPOINT": info["url"], "LOGS_INGESTION_ENDPOINT": info["url"], "LOGS_DCR_IMMUTABLE_ID": info["dcr"],
           "SWEEP_SUBSCRIPTIONS": ",".join(subs), "SDK_RETRY_BACKOFF": "0.1"}
    settings = Settings.from_env(env)
    before = rss_mb()

    deps = build_sweep_deps(settings)
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
    t1 = time.perf_counter()
    result = run_sweep(deps)
    seconds = time.perf_counter() - t1
    peak = rss_mb()
    if args.profile:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    parent.send("counts")
    counts = parent.recv()
    g = result.summary["graphCalls"]
    assert g["nsgs"] == math.ceil(args.nsgs / 1000), g
    assert result.summary["nsgs"] == args.nsgs and not result.failures, result.summary
    print(f"sweep nsgs={args.nsgs} graph_calls={g['nsgs']} ingest_calls={counts['ingest']} seconds={seconds:.1f} "
          f"peak_rss_mb={peak:.0f}")
    print(f"#   context_graph_calls={g['nics']} (public-NIC query) total_graph_http={counts['graph']} "
          f"rss_before_mb={before:.0f} throttle_waits={deps.graph.throttle_waits} "
          f"compliance={result.summary['compliancePercent']}% findings={json.dumps(result.summary['findings'])}")

    if args.skip_per_subscription:
        parent.send("stop")
        parent.recv()
        return
    parent.send("reset")
    parent.recv()
    per_sub = build_sweep_deps(settings)
    per_sub.graph = None  # Resource Graph "unavailable": the fallback lists every subscription
    t2 = time.perf_counter()
    listed = run_sweep(per_sub)
    list_seconds = time.perf_counter() - t2
    parent.send("counts")
    counts2 = parent.recv()
    assert listed.summary["nsgs"] == args.nsgs, listed.summary
    print(f"per-subscription nsgs={args.nsgs} subscriptions={n_subs} list_calls={counts2['arm.list']} "
          f"ingest_calls={counts2['ingest']} seconds={list_seconds:.1f}")
    print(f"ratio per_subscription_over_resource_graph={list_seconds / seconds:.1f}x")
    parent.send("stop")
    parent.recv()
    proc.join(timeout=30)


if __name__ == "__main__":
    main()
