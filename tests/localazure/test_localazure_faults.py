"""Fault injection: throttling, 5xx, dropped connections, latency, concurrent modification."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError
from azure.mgmt.network.models import SecurityRule

from localazure.testing import rule_body


def test_429_with_retry_after_then_success(local_azure, network_client, seeded):
    fault = local_azure.faults.add("arm.get", status=429, times=2, retry_after=0.05)
    nsg = network_client.network_security_groups.get("rg1", "nsg1")
    assert nsg.name == "nsg1"
    assert fault.hits == 2
    assert local_azure.count("arm.get") == 3
    assert local_azure.count("arm.get", status=429) == 2


def test_429_whole_seconds_uses_retry_after_header(local_azure, network_client, seeded):
    import requests

    local_azure.faults.throttle("arm.get", times=1, retry_after=1, code="RetryableErrorDueToAnotherOperation")
    resp = requests.get(
        f"{local_azure.url}{seeded}?api-version=2024-05-01",
        headers={"Authorization": f"Bearer {local_azure.token}"},
        verify=local_azure.ca_path,
    )
    assert resp.status_code == 429 and resp.headers["Retry-After"] == "1"
    assert resp.json()["error"]["code"] == "RetryableErrorDueToAnotherOperation"


def test_throttled_put_is_retried(local_azure, network_client, seeded):
    local_azure.faults.add(
        "arm.put", status=429, times=1, retry_after=0.01, code="RetryableErrorDueToAnotherOperation"
    )
    network_client.security_rules.begin_create_or_update(
        "rg1", "nsg1", "x", SecurityRule({"properties": rule_body(priority=300)})
    ).result()
    assert local_azure.count("arm.put") == 2


def test_503_then_success(local_azure, network_client, seeded):
    local_azure.faults.error("arm.get", status=503, times=1)
    assert network_client.network_security_groups.get("rg1", "nsg1").name == "nsg1"
    assert local_azure.count("arm.get") == 2


def test_500_exhausts_retries(local_azure, seeded):
    client = local_azure.network_client("sub1", retry_total=2)
    local_azure.faults.add("arm.get", status=500, times=None)
    with pytest.raises(HttpResponseError) as err:
        client.network_security_groups.get("rg1", "nsg1")
    assert err.value.status_code == 500
    assert local_azure.count("arm.get") == 3


def test_dropped_connection_then_success(local_azure, network_client, seeded):
    local_azure.faults.drop("arm.get", times=1)
    assert network_client.network_security_groups.get("rg1", "nsg1").name == "nsg1"
    assert local_azure.count("arm.get") == 2
    assert local_azure.count("arm.get", status=None) == 1  # the dropped one got no status


def test_dropped_connection_without_retries_raises(local_azure, seeded):
    client = local_azure.network_client("sub1", retry_total=0)
    local_azure.faults.drop("arm.get", times=1)
    with pytest.raises(ServiceResponseError):
        client.network_security_groups.get("rg1", "nsg1")


def test_lro_poll_faults_are_retried(local_azure, network_client, seeded):
    local_azure.faults.error("lro.poll", status=503, times=1)
    network_client.network_security_groups.begin_delete("rg1", "nsg1").result()
    assert local_azure.nsgs() == []


def test_latency(local_azure, network_client, seeded):
    local_azure.faults.latency("arm.get", 150, times=1)
    start = time.monotonic()
    network_client.network_security_groups.get("rg1", "nsg1")
    assert time.monotonic() - start >= 0.15


def test_match_by_path_and_wildcard_kind(local_azure, network_client, seeded):
    local_azure.faults.add("arm.*", status=503, times=1, match="/securityRules/")
    network_client.network_security_groups.get("rg1", "nsg1")  # not matched
    network_client.security_rules.get("rg1", "nsg1", "ssh")  # matched once, retried
    assert local_azure.count("arm.get", status=503) == 1


def test_changed_under_you(local_azure, network_client, seeded):
    """A hook runs between the client's read and its write: the write lands on a newer NSG (lost update)."""
    nsg = network_client.network_security_groups.get("rg1", "nsg1")
    read_etag = nsg.etag

    def someone_else(azure, req):
        def add_rule(body):
            body["properties"]["securityRules"].append(
                {"name": "sneaky", "properties": rule_body(priority=4000)}
            )

        azure.update_nsg(req.nsg_id, add_rule)

    local_azure.faults.changed_under_you(someone_else, kind="arm.put")
    nsg.security_rules = [r for r in nsg.security_rules if r.name != "ssh"]
    result = network_client.network_security_groups.begin_create_or_update("rg1", "nsg1", nsg).result()
    # NSG PUT ignores If-Match (documented ARM behaviour): our full PUT overwrote the concurrent change
    assert [r.name for r in result.security_rules] == []
    assert result.etag != read_etag


def test_reset_clears_faults(local_azure, network_client, seeded):
    local_azure.faults.add("arm.get", status=500, times=None)
    local_azure.faults.reset()
    assert network_client.network_security_groups.get("rg1", "nsg1").name == "nsg1"
