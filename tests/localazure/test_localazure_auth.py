"""Auth, TLS and the entry points."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

import localazure
from localazure import StaticTokenCredential


def test_wrong_token_is_401(local_azure, seeded):
    client = local_azure.network_client("sub1", credential=StaticTokenCredential("nope"))
    with pytest.raises(ClientAuthenticationError) as err:
        client.network_security_groups.get("rg1", "nsg1")
    assert err.value.status_code == 401 and err.value.error.code == "AuthenticationFailed"
    assert local_azure.count("arm.get", status=401) == 1


def test_missing_token_is_401(local_azure, seeded):
    resp = requests.get(f"{local_azure.url}{seeded}?api-version=2024-05-01", verify=local_azure.ca_path)
    assert resp.status_code == 401 and "missing" in resp.json()["error"]["message"]


def test_mgmt_clients_request_arm_scope(local_azure, seeded):
    cred = local_azure.credential()
    local_azure.network_client("sub1", credential=cred).network_security_groups.get("rg1", "nsg1")
    assert cred.requested_scopes[0] == ("https://management.azure.com/.default",)


def test_tls_verification_is_not_disabled(local_azure, seeded):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{local_azure.url}{seeded}?api-version=2024-05-01")  # system CAs do not trust us
    client = local_azure.network_client("sub1", connection_verify=True, retry_total=0)
    with pytest.raises(ServiceRequestError):
        client.network_security_groups.get("rg1", "nsg1")


def test_plain_sdk_construction_with_documented_kwargs(local_azure, seeded):
    from azure.mgmt.network import NetworkManagementClient
    from azure.mgmt.resourcegraph import ResourceGraphClient
    from azure.monitor.ingestion import LogsIngestionClient

    cred = StaticTokenCredential()
    ca = local_azure.ca_path
    net = NetworkManagementClient(cred, "sub1", base_url=local_azure.url, connection_verify=ca)
    assert net.network_security_groups.get("rg1", "nsg1").name == "nsg1"
    graph = ResourceGraphClient(cred, base_url=local_azure.url, connection_verify=ca)
    from azure.mgmt.resourcegraph.models import QueryRequest

    q = "resources | where type =~ 'microsoft.network/networksecuritygroups'"
    assert graph.resources(QueryRequest(subscriptions=["sub1"], query=q)).total_records == 1
    LogsIngestionClient(endpoint=local_azure.url, credential=cred, connection_verify=ca).upload(
        local_azure.dcr_id, local_azure.stream, [{"RecordType": "sweep"}]
    )
    assert local_azure.ingested() == [{"RecordType": "sweep"}]


def test_start_context_manager_and_seed_file(tmp_path):
    seed = tmp_path / "seed.json"
    seed.write_text(
        '{"nsgs": [{"id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/'
        'networkSecurityGroups/n", "location": "westus", "properties": {"securityRules": []}}]}'
    )
    with localazure.start(port=0) as azure:
        assert azure.seed_file(seed) == 1
        assert azure.url.startswith("https://127.0.0.1:") and os.path.exists(azure.ca_path)
        ca = azure.ca_path
    assert not os.path.exists(ca)


def test_cli_serves_and_prints_url(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen(
        [sys.executable, "-m", "localazure", "--port", "0", "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = proc.stdout.readline()
        assert "listening on https://127.0.0.1:" in first
        url = first.split()[-1]
        ca = proc.stdout.readline().split(":", 1)[1].split()[0]
        resp = requests.get(
            f"{url}/subscriptions/s/providers/Microsoft.Network/networkSecurityGroups?api-version=1",
            headers={"Authorization": "Bearer localazure-dev-token"},
            verify=ca,
        )
        assert resp.status_code == 200 and resp.json() == {"value": []}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
