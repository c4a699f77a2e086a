"""Resource Graph stand-in driven by the real ResourceGraphClient."""

from __future__ import annotations

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.resourcegraph.models import QueryRequest, QueryRequestOptions

from localazure.testing import nsg_body, rule_body

NSG_QUERY = (
    "resources | where type =~ 'microsoft.network/networksecuritygroups'"
    " | project id, name, type, subscriptionId, resourceGroup, tenantId, properties"
)


def run_all(client, query: str, subscriptions: list[str], top: int = 1000):
    rows, pages, token = [], 0, None
    while True:
        resp = client.resources(
            QueryRequest(
                subscriptions=subscriptions,
                query=query,
                options=QueryRequestOptions(top=top, skip_token=token, result_format="objectArray"),
            )
        )
        pages += 1
        rows.extend(resp.data)
        token = resp.skip_token
        if not token:
            return rows, pages, resp


def test_paging_over_2500_nsgs(local_azure, graph_client):
    for i in range(2500):
        local_azure.seed_nsg(nsg_body("sub1", f"rg{i % 7}", f"nsg{i:04d}", [("ssh", rule_body())]))
    local_azure.seed_nsg(nsg_body("sub2", "rg", "elsewhere"))
    rows, pages, last = run_all(graph_client, NSG_QUERY, ["sub1"])
    assert pages == 3 and len(rows) == 2500
    assert len({r["id"] for r in rows}) == 2500
    assert last.total_records == 2500 and last.count == 500
    r = rows[0]
    assert r["type"] == "microsoft.network/networksecuritygroups"
    assert r["subscriptionId"] == "sub1" and r["resourceGroup"].startswith("rg") and r["tenantId"]
    assert r["properties"]["securityRules"][0]["properties"]["destinationPortRange"] == "22"
    assert local_azure.count("graph") == 3


def test_quota_headers_on_every_response(local_azure, graph_client):
    seen = []

    def hook(response):
        seen.append(dict(response.http_response.headers))

    graph_client.resources(QueryRequest(subscriptions=["sub1"], query=NSG_QUERY), raw_response_hook=hook)
    with pytest.raises(HttpResponseError):
        graph_client.resources(
            QueryRequest(subscriptions=["sub1"], query="resources | take 1"), raw_response_hook=hook
        )
    assert len(seen) == 2
    for headers in seen:
        assert int(headers["x-ms-user-quota-remaining"]) >= 0
        assert headers["x-ms-user-quota-resets-after"].count(":") == 2


def test_quota_enforcement_throttles(local_azure):
    local_azure.graph.enforce_quota = True
    local_azure.graph.quota_per_window = 2
    client = local_azure.graph_client(retry_total=0)
    for _ in range(2):
        client.resources(QueryRequest(subscriptions=["sub1"], query=NSG_QUERY))
    with pytest.raises(HttpResponseError) as err:
        client.resources(QueryRequest(subscriptions=["sub1"], query=NSG_QUERY))
    assert err.value.status_code == 429


def test_nic_rows_and_selector(local_azure, graph_client):
    nsg_id = local_azure.seed_nsg(nsg_body("sub1", "rg1", "nsg1"))
    local_azure.seed_nic(
        {
            "id": "/subscriptions/sub1/resourceGroups/rg1/providers/Microsoft.Network/"
            "networkInterfaces/vm1-nic",
            "name": "vm1-nic",
            "type": "Microsoft.Network/networkInterfaces",
            "location": "westeurope",
            "properties": {"networkSecurityGroup": {"id": nsg_id}},
        }
    )
    q = (
        "resources | where type =~ 'microsoft.network/networkinterfaces'"
        " | where isnotnull(properties.networkSecurityGroup)"
    )
    rows, _, _ = run_all(graph_client, q, ["sub1"])
    assert [r["name"] for r in rows] == ["vm1-nic"]
    assert rows[0]["type"] == "microsoft.network/networkinterfaces" and rows[0]["resourceGroup"] == "rg1"
    assert rows[0]["properties"]["networkSecurityGroup"]["id"] == nsg_id
    # a custom selector wins over the built-in ones
    local_azure.graph.add_selector(lambda query: "vnets" if "virtualnetworks" in query.lower() else None)
    local_azure.graph.seed(
        "vnets", {"id": "/subscriptions/sub1/resourceGroups/rg1/providers/x/virtualNetworks/v"}
    )
    rows, _, _ = run_all(
        graph_client, "resources | where type =~ 'microsoft.network/virtualnetworks'", ["sub1"]
    )
    assert len(rows) == 1


def test_unsupported_query_and_bad_top_are_400(graph_client):
    with pytest.raises(HttpResponseError) as err:
        graph_client.resources(QueryRequest(subscriptions=["s"], query="resourcecontainers | take 1"))
    assert err.value.status_code == 400
    with pytest.raises(HttpResponseError):
        graph_client.resources(
            QueryRequest(subscriptions=["s"], query=NSG_QUERY, options=QueryRequestOptions(top=1001))
        )


def test_skip_option(local_azure, graph_client):
    for i in range(5):
        local_azure.seed_nsg(nsg_body("sub1", "rg", f"n{i}"))
    resp = graph_client.resources(
        QueryRequest(subscriptions=["sub1"], query=NSG_QUERY, options=QueryRequestOptions(skip=3, top=10))
    )
    assert [r["name"] for r in resp.data] == ["n3", "n4"] and resp.skip_token is None


def test_graph_faults_are_retried(local_azure, graph_client):
    local_azure.faults.add("graph", status=503, times=1)
    graph_client.resources(QueryRequest(subscriptions=["sub1"], query=NSG_QUERY))
    assert local_azure.count("graph") == 2
