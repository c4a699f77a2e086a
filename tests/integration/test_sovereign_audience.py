"""Issue 12.10: sovereign clouds need the token audience changed, not only the endpoint.

The stand-ins are configured like the China cloud (ARM audience https://management.chinacloudapi.cn, Logs
Ingestion audience https://monitor.azure.cn) and refuse a token for any other audience with 401
InvalidAuthenticationTokenAudience, as ARM does. The app gets the audiences from settings."""

from __future__ import annotations

import pytest

from localazure.server import LocalAzure
from shared.app.config import Settings
from shared.app.sweep import run_sweep
from shared.azure.wiring import build_sweep_deps, event_deps
from shared.core.errors import ConfigError, TransientError
from tests.eventfactory import function_event
from tests.integration.conftest import Guard, local_env
from tests.nsgfactory import nsg, nsg_id, rule

CHINA = {"ARM_AUDIENCE": "https://management.chinacloudapi.cn", "LOGS_INGESTION_AUDIENCE": "https://monitor.azure.cn"}
NSG = "cn-nsg"
NSG_ID = nsg_id(NSG, "rg1")


def china(azure: LocalAzure) -> None:
    azure.rbac.audiences = {"arm": CHINA["ARM_AUDIENCE"], "ingest": CHINA["LOGS_INGESTION_AUDIENCE"]}
    azure.rbac.strict_audience = True


def test_event_path_uses_the_configured_audiences(guard: Guard, monkeypatch: pytest.MonkeyPatch):
    china(guard.azure)
    for key, value in CHINA.items():
        monkeypatch.setenv(key, value)
    event_deps.cache_clear()
    guard.azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG))
    guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    assert [r["Status"] for r in guard.rows(RecordType="finding")] == ["Open"]
    assert guard.azure.count(status=401) == 0


def test_sweep_uses_the_configured_audiences(local_azure: LocalAzure):
    china(local_azure)
    local_azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG))
    result = run_sweep(build_sweep_deps(Settings.from_env(local_env(local_azure, **CHINA))))
    assert not result.failures and result.summary["nsgs"] == 1
    # NSGs, public NICs, policy exemptions (policyresources) and Azure ML workspaces: four Resource Graph queries
    assert local_azure.count("graph", status=200) == 4 and local_azure.count(status=401) == 0


def test_ml_lens_uses_the_configured_arm_audience(local_azure: LocalAzure):
    """The Azure ML lens has its own ARM pipeline (computes, listNodes): it must ask for the cloud's audience too."""
    from localazure.aml_estate import seed_ml_estate

    china(local_azure)
    seed_ml_estate(local_azure)
    result = run_sweep(build_sweep_deps(Settings.from_env(local_env(local_azure, **CHINA))))
    assert not result.failures and result.summary["computes"]["judged"] == 3
    assert local_azure.count("aml", status=200) >= 3 and local_azure.count(status=401) == 0


def test_the_default_audience_is_refused_by_a_china_cloud(guard: Guard):
    china(guard.azure)
    event_deps.cache_clear()
    guard.azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG))
    with pytest.raises(TransientError, match="authentication failed"):  # Event Grid redelivers
        guard.deliver(function_event("eventgrid-rule-write.json", NSG_ID, "AllowSSH"))
    assert guard.azure.count("arm.get", status=401) >= 1 and guard.rows() == []


def test_a_wrong_audience_gets_arms_error_body(local_azure: LocalAzure):
    china(local_azure)
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    from localazure.auth import StaticTokenCredential

    token = StaticTokenCredential(f"{local_azure.token}|https://management.azure.com")
    client = local_azure.network_client("sub1", token)
    with pytest.raises((ClientAuthenticationError, HttpResponseError)) as info:
        client.network_security_groups.get("rg", "x")
    assert info.value.status_code == 401
    assert info.value.response.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"


@pytest.mark.parametrize(("endpoint", "arm", "logs"), [
    ("https://management.azure.com", "https://management.azure.com", "https://monitor.azure.com"),
    ("https://management.chinacloudapi.cn", "https://management.chinacloudapi.cn", "https://monitor.azure.cn"),
    ("https://management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net",
     "https://monitor.azure.us"),
])
def test_known_clouds_get_their_audiences_from_the_endpoint(endpoint, arm, logs):
    s = Settings.from_env({"ARM_ENDPOINT": endpoint})
    assert (s.arm_audience, s.logs_audience) == (arm, logs)


def test_an_unknown_cloud_must_name_its_audiences():
    with pytest.raises(ConfigError, match="set ARM_AUDIENCE and LOGS_INGESTION_AUDIENCE"):
        Settings.from_env({"ARM_ENDPOINT": "https://management.example.sovcloud"})
    s = Settings.from_env({"ARM_ENDPOINT": "https://management.example.sovcloud",
                           "ARM_AUDIENCE": "https://management.example.sovcloud",
                           "LOGS_INGESTION_AUDIENCE": "https://monitor.example.sovcloud"})
    assert s.arm_audience == "https://management.example.sovcloud"
