"""Issue 12.6: every request the app makes names the API version pinned in shared/azure/apiversions.py.

The stand-in records each request's api-version; the event path (read, revert with long-running polls),
the sweep (Resource Graph, per-subscription fallback) and ingestion all run, and no request may carry an
SDK default."""

from __future__ import annotations

import pytest

from shared.app.config import Settings
from shared.app.sweep import run_sweep
from shared.azure import apiversions
from shared.azure.wiring import build_sweep_deps
from tests.eventfactory import function_event
from tests.integration.conftest import Guard, local_env
from tests.nsgfactory import nsg, nsg_id, rule

NSG = "pinned-nsg"
NSG_ID = nsg_id(NSG, "rg1")
EXPECTED = {"arm": apiversions.NETWORK, "lro": apiversions.NETWORK, "graph": apiversions.RESOURCE_GRAPH,
            "ingest": apiversions.LOGS_INGESTION}


def test_every_request_carries_the_pinned_api_version(guard: Guard, monkeypatch: pytest.MonkeyPatch):
    from shared.azure.wiring import event_deps

    monkeypatch.setenv("REVERT_MODE", "enforce")
    event_deps.cache_clear()
    # the default revert inserts a deny at 299: a long-running PUT, polled (the "lro" family)
    guard.azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG))
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    sub = NSG_ID.split("/")[2]
    guard.azure.faults.add("graph", status=503, times=None, retry_after=0.01)  # forces the ARM list fallback
    run_sweep(build_sweep_deps(Settings.from_env(local_env(guard.azure, SWEEP_SUBSCRIPTIONS=sub))))
    seen = {}
    for rec in guard.azure.requests:
        family = rec.kind.split(".")[0]
        seen.setdefault(family, set()).add(rec.api_version)
    assert {"arm", "lro", "graph", "ingest"} <= set(seen), seen
    assert {k: v for k, v in seen.items() if k in EXPECTED} == {k: {EXPECTED[k]} for k in seen if k in EXPECTED}
    assert guard.azure.count("arm.delete") + guard.azure.count("arm.put") >= 1
    assert guard.azure.count("arm.list") >= 1
