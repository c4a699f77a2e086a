"""Event path throughput and latency: Event Grid events -> on_nsg_change's use case -> real azure-mgmt-network
and azure-monitor-ingestion clients -> the local stand-ins (HTTPS on loopback).

    python bench/event_path.py --events 300

One line per scenario (0 ms and 50 ms injected latency on every ARM GET):
``event_path scenario=... events=N seconds=S events_per_s=E p50_ms=.. p99_ms=.. arm_gets_per_event=..
ingest_calls_per_event=..``, plus a baseline line: the same events through the same handler with in-memory
reader and sink (no HTTP), and the ratio. Handling is sequential (one Functions invocation at a time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from localazure.server import LocalAzure
from localazure.testing import nsg_body, rule_body
from shared.app.config import Settings
from shared.app.handlers import EventDeps, handle_nsg_event
from shared.core.model import parse_nsg
from shared.core.policy import Engine

SUB = "2c1e3d4f-0000-4000-8000-00000000a11c"


def make_event(nsg_id: str, n: int) -> dict:
    return {"id": f"evt-{n}", "topic": f"/subscriptions/{SUB}", "subject": f"{nsg_id}/securityRules/AllowSSH",
            "eventType": "Microsoft.Resources.ResourceWriteSuccess", "eventTime": "2026-11-26T08:18:04.6117357Z",
            "dataVersion": "2", "metadataVersion": "1",
            "data": {"operationName": "Microsoft.Network/networkSecurityGroups/securityRules/write",
                     "resourceUri": f"{nsg_id}/securityRules/AllowSSH", "status": "Succeeded",
                     "correlationId": f"corr-{n}", "subscriptionId": SUB,
                     "claims": {"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn": "ada@contoso.example"},
                     "authorization": {"evidence": {"principalType": "User"}}}}


class MemoryReader:
    def __init__(self, bodies: dict[str, dict]) -> None:
        self.nsgs = {k.lower(): parse_nsg(v) for k, v in bodies.items()}

    def get_nsg(self, nsg_id: str):
        return self.nsgs[nsg_id.lower()]


class MemorySink:
    def send(self, rows) -> None:
        self.last = rows


def run(label: str, deps: EventDeps, events: list[dict], azure: LocalAzure | None, arm_latency_ms: int = 0) -> float:
    if azure is not None:
        azure.reset()  # forgets requests and faults
        if arm_latency_ms:
            azure.faults.add("arm.get", latency_ms=arm_latency_ms, times=None)
    latencies = []
    t0 = time.perf_counter()
    for event in events:
        s = time.perf_counter()
        outcome = handle_nsg_event(event, deps)
        latencies.append((time.perf_counter() - s) * 1000)
        assert outcome.status == "evaluated", outcome
    seconds = time.perf_counter() - t0
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    line = (f"event_path scenario={label} events={len(events)} seconds={seconds:.2f} "
            f"events_per_s={len(events) / seconds:.1f} p50_ms={statistics.median(latencies):.2f} p99_ms={p99:.2f}")
    if azure is not None:
        line += (f" arm_gets_per_event={azure.count('arm.get') / len(events):.2f}"
                 f" ingest_calls_per_event={azure.count('ingest') / len(events):.2f}")
    print(line, flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    parser.add_argument("--nsgs", type=int, default=50)
    args = parser.parse_args()

    with LocalAzure() as azure:
        bodies = {}
        for i in range(args.nsgs):
            rules = [(f"AllowApp{j}", rule_body(100 + j, str(8000 + j), "VirtualNetwork")) for j in range(15)]
            rules.append(("AllowSSH", rule_body(300, "22", "*")))
            body = nsg_body(SUB, "rg-bench", f"nsg-{i}", rules)
            azure.seed_nsg(body)
            bodies[body["id"]] = azure.get_nsg(body["id"])
        os.environ.update(azure.app_settings(SDK_RETRY_BACKOFF="0.05"))
        from shared.azure.wiring import build_event_deps

        deps = build_event_deps(Settings.from_env())
        ids = list(bodies)
        events = [make_event(ids[n % len(ids)], n) for n in range(args.events)]
        run("warmup", deps, events[:20], azure)
        real0 = run("arm_latency_0ms", deps, events, azure)
        run("arm_latency_50ms", deps, events, azure, arm_latency_ms=50)
        baseline = run("baseline_in_memory", EventDeps(MemoryReader(bodies), MemorySink(), Engine()), events, None)
        print(f"event_path http_over_in_memory={real0 / baseline:.1f}x")


if __name__ == "__main__":
    main()
