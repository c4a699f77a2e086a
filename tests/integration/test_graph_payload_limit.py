"""Issue 12.3: Resource Graph refuses pages over 16 MiB (HTTP 400 ResponsePayloadTooLarge). The stand-in
enforces the real limit with Azure's error body; the sweep projects only what evaluation needs (no
defaultSecurityRules, put back locally) and halves $top when a page is still too large."""

from __future__ import annotations

import json

import pytest
from azure.functions.timer import TimerRequest

from localazure.graph import MAX_RESPONSE_BYTES
from localazure.server import LocalAzure
from localazure.testing import nsg_body, rule_body
from shared.app.config import Settings
from shared.app.sweep import run_sweep
from shared.azure.credentials import make_credential
from shared.azure.defaultrules import default_rules, with_default_rules
from shared.azure.graph import ResourceGraphSource
from shared.azure.wiring import build_sweep_deps
from shared.core.inventory import NSG_QUERY, Scope
from shared.core.model import parse_nsg
from tests.integration.conftest import function, local_env

SUB = "5f1c7a52-8e0b-4c39-9a47-2f6d0e3b9c11"
RG = "rg-network-platform-prod-westeurope"


def seed_big_estate(azure: LocalAzure, nsgs: int, rules: int) -> None:
    """NSGs the size of a real estate's: GUID subscription, long names, ``rules`` rules each."""
    for i in range(nsgs):
        body = nsg_body(SUB, RG, f"nsg-app-tier-{i:04d}-westeurope", [
            (f"allow-app-{j:02d}-from-corp", rule_body(100 + j, str(8000 + j), "10.20.0.0/16"))
            for j in range(rules)])
        azure.seed_nsg(body)


def sweep(azure: LocalAzure) -> tuple[object, ResourceGraphSource]:
    settings = Settings.from_env(local_env(azure))
    deps = build_sweep_deps(settings)
    graph = ResourceGraphSource(settings, make_credential(settings), sleep=lambda s: None)
    deps.graph = graph
    return run_sweep(deps), graph


def test_graph_standin_refuses_a_page_over_the_limit_with_azures_error(local_azure: LocalAzure):
    seed_big_estate(local_azure, 40, 5)
    local_azure.graph.max_response_bytes = 50_000
    client = local_azure.graph_client()
    from azure.core.exceptions import HttpResponseError
    from azure.mgmt.resourcegraph.models import QueryRequest

    with pytest.raises(HttpResponseError) as info:
        client.resources(QueryRequest(subscriptions=[SUB], query="resources | where type =~ "
                                      "'microsoft.network/networksecuritygroups'"))
    assert info.value.status_code == 400
    error = info.value.response.json()["error"]
    assert error["code"] == "BadRequest"
    (detail,) = error["details"]
    assert detail["code"] == "ResponsePayloadTooLarge"
    assert detail["message"].startswith("Response payload size is ")
    assert "has exceeded the limit of 50000" in detail["message"]
    assert MAX_RESPONSE_BYTES == 16777216  # the default is Azure's limit


def test_nsg_query_projection_leaves_default_rules_out(local_azure: LocalAzure):
    seed_big_estate(local_azure, 3, 2)
    settings = Settings.from_env(local_env(local_azure))
    graph = ResourceGraphSource(settings, make_credential(settings))
    local_azure.graph.max_response_bytes = 10**9
    body = {"subscriptions": [SUB], "query": NSG_QUERY, "options": {"resultFormat": "objectArray"}}
    raw = local_azure.graph.query(body)["data"]
    assert all("defaultSecurityRules" not in r["properties"] for r in raw)
    assert set(raw[0]["properties"]) == {"securityRules", "subnets", "networkInterfaces"}
    (page,) = list(graph.pages(NSG_QUERY, Scope((SUB,))))
    # ... and the adapter puts the standard six back: the NSG parses like the ARM GET of it
    for row in page:
        swept = parse_nsg(row)
        got = parse_nsg(local_azure.get_nsg(row["id"]))
        assert swept.default_rules == got.default_rules and swept.rules == got.rules


def test_sweep_of_1000_nsgs_with_17_rules_fits_in_one_page_without_default_rules(local_azure: LocalAzure):
    """Full rows are over 16 MiB (the old query failed here every night); projected rows are not."""
    seed_big_estate(local_azure, 1000, 17)
    local_azure.graph.max_response_bytes = 10**9
    full_size = len(json.dumps(local_azure.graph.query({"subscriptions": [SUB], "query": (
        "resources | where type =~ 'microsoft.network/networksecuritygroups'")}), separators=(",", ":")))
    local_azure.graph.max_response_bytes = MAX_RESPONSE_BYTES
    assert full_size > MAX_RESPONSE_BYTES
    result, graph = sweep(local_azure)
    assert not result.failures and result.summary["nsgs"] == 1000
    assert graph.shrinks == 0 and local_azure.count("graph", status=400) == 0


def test_sweep_of_1000_nsgs_with_30_rules_halves_top_and_completes(local_azure: LocalAzure):
    seed_big_estate(local_azure, 1000, 30)
    result, graph = sweep(local_azure)
    assert not result.failures and result.summary["nsgs"] == 1000
    assert graph.shrinks >= 1 and graph.page_size <= 500
    assert local_azure.count("graph", status=400) == graph.shrinks
    evaluations = [r for r in local_azure.ingested() if r["RecordType"] == "evaluation"]
    assert len({r["NsgId"] for r in evaluations}) == 1000


def test_timer_sweep_does_not_end_partial_on_a_large_estate(local_azure: LocalAzure, monkeypatch):
    seed_big_estate(local_azure, 1000, 20)
    for key, value in local_env(local_azure).items():
        monkeypatch.setenv(key, value)
    function("nightly_sweep")(TimerRequest(past_due=False))
    (summary,) = [r for r in local_azure.ingested() if r["RecordType"] == "sweep"]
    assert summary["Result"] == "completed" and summary["Details"]["failures"] == []


def test_default_rules_match_the_real_arm_sample():
    from pathlib import Path

    sample = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "azure-reference" /
                         "arm-nsg-get.json").read_text())["responses"]["200"]["body"]
    real = {r["name"]: r["properties"] for r in sample["properties"]["defaultSecurityRules"]}
    ours = {r["name"]: r["properties"] for r in default_rules(sample["id"])}
    assert set(real) == set(ours)
    for name, props in real.items():
        for key in ("protocol", "sourcePortRange", "destinationPortRange", "sourceAddressPrefix",
                    "destinationAddressPrefix", "access", "priority", "direction"):
            assert ours[name][key] == props[key], (name, key)


@pytest.mark.parametrize(("row", "touched"), [
    ({"id": "/x", "type": "microsoft.network/networksecuritygroups", "properties": {}}, True),
    ({"id": "/x", "type": "Microsoft.Network/networkSecurityGroups", "properties": {}}, True),
    ({"id": "/x", "type": "microsoft.network/networksecuritygroups",
      "properties": {"defaultSecurityRules": []}}, False),
    ({"id": "/x", "type": "microsoft.network/networkinterfaces", "properties": {}}, False),
    ({"id": "/x", "type": "microsoft.network/networksecuritygroups", "properties": "bad"}, False),
    ("not a row", False),
])
def test_with_default_rules_only_fills_nsg_rows_that_lack_them(row, touched):
    out = with_default_rules(row)
    assert (out is not row) == touched
    if touched:
        assert len(out["properties"]["defaultSecurityRules"]) == 6
