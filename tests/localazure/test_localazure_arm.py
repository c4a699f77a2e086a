"""ARM Network stand-in driven by the real NetworkManagementClient."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.network.models import NetworkSecurityGroup, SecurityRule

from localazure.testing import nsg_body, rule_body

REFERENCE_DIR = str(Path(__file__).resolve().parents[1] / "fixtures" / "azure-reference")


def _rule(name: str | None = None, **props: Any) -> SecurityRule:
    return SecurityRule(
        {"name": name, "properties": rule_body(**props)} if name else {"properties": rule_body(**props)}
    )


def test_nsg_create_get_update_delete_with_lro(local_azure, network_client):
    poller = network_client.network_security_groups.begin_create_or_update(
        "rg1",
        "nsg1",
        NetworkSecurityGroup(location="westeurope", tags={"owner": "me"}, security_rules=[_rule("ssh")]),
    )
    nsg = poller.result()
    assert nsg.provisioning_state == "Succeeded"
    assert [r.name for r in nsg.security_rules] == ["ssh"]
    assert len(nsg.default_security_rules) == 6
    assert local_azure.count("arm.put", resource="nsg") == 1
    assert local_azure.count("lro.poll") >= 2  # at least one InProgress, then Succeeded
    first_etag = nsg.etag

    got = network_client.network_security_groups.get("rg1", "nsg1")
    assert got.etag == first_etag and got.tags == {"owner": "me"}

    got.security_rules.append(_rule("rdp", priority=110, port="3389"))
    updated = network_client.network_security_groups.begin_create_or_update("rg1", "nsg1", got).result()
    assert {r.name for r in updated.security_rules} == {"ssh", "rdp"}
    assert updated.etag != first_etag
    assert all(r.etag == updated.etag for r in updated.security_rules)

    network_client.network_security_groups.begin_delete("rg1", "nsg1").result()
    with pytest.raises(ResourceNotFoundError) as err:
        network_client.network_security_groups.get("rg1", "nsg1")
    assert err.value.error.code == "ResourceNotFound"
    assert local_azure.nsgs() == []


def test_put_returns_201_then_200_and_updating_state(local_azure, network_client):
    body = NetworkSecurityGroup(location="westeurope")
    statuses = []

    def raw(pipeline_response, deserialized, headers):
        statuses.append(pipeline_response.http_response.status_code)
        return deserialized

    poller = network_client.network_security_groups.begin_create_or_update(
        "rg1", "n", body, polling=False, cls=raw
    )
    initial = poller.result()
    assert initial.provisioning_state == "Updating"
    network_client.network_security_groups.begin_create_or_update(
        "rg1", "n", body, polling=False, cls=raw
    ).result()
    assert statuses == [201, 200]


def test_lro_without_client_polling_interval_is_fast(local_azure):
    import time

    from azure.mgmt.network import NetworkManagementClient

    client = NetworkManagementClient(
        local_azure.credential(), "sub1", base_url=local_azure.url, connection_verify=local_azure.ca_path
    )
    start = time.monotonic()
    client.network_security_groups.begin_create_or_update(
        "rg1", "nsg1", NetworkSecurityGroup(location="westeurope")
    ).result()
    assert time.monotonic() - start < 5  # retry-after-ms beats the default 30 s polling_interval


def test_rule_create_get_delete_and_etag_changes(local_azure, network_client, seeded):
    before = network_client.network_security_groups.get("rg1", "nsg1").etag
    rule = network_client.security_rules.begin_create_or_update(
        "rg1", "nsg1", "rdp", _rule(priority=120, port="3389", source="Internet")
    ).result()
    assert rule.name == "rdp" and rule.provisioning_state == "Succeeded"
    assert rule.id.endswith("/networkSecurityGroups/nsg1/securityRules/rdp")
    assert rule.destination_port_ranges == [] and rule.source_address_prefixes == []
    after_put = network_client.network_security_groups.get("rg1", "nsg1").etag
    assert after_put != before
    assert network_client.security_rules.get("rg1", "nsg1", "rdp").source_address_prefix == "Internet"

    network_client.security_rules.begin_delete("rg1", "nsg1", "rdp").result()
    after_delete = network_client.network_security_groups.get("rg1", "nsg1").etag
    assert after_delete not in (before, after_put)
    with pytest.raises(ResourceNotFoundError) as err:
        network_client.security_rules.get("rg1", "nsg1", "rdp")
    assert err.value.error.code == "NotFound"
    assert [r.name for r in network_client.security_rules.list("rg1", "nsg1")] == ["ssh"]


def test_delete_missing_is_204_noop(local_azure, network_client, seeded):
    network_client.network_security_groups.begin_delete("rg1", "nope").result()
    network_client.security_rules.begin_delete("rg1", "nsg1", "nope").result()
    assert local_azure.count("arm.delete", status=204) == 2
    with pytest.raises(ResourceNotFoundError):  # parent NSG missing
        network_client.security_rules.begin_delete("rg1", "nope", "x")


def test_rule_put_on_missing_nsg_is_404(network_client):
    with pytest.raises(ResourceNotFoundError):
        network_client.security_rules.begin_create_or_update("rg1", "missing", "r", _rule()).result()


def test_list_and_list_all_follow_next_link(local_azure):
    local_azure.page_size = 4
    for i in range(10):
        local_azure.seed_nsg(nsg_body("sub1", "rg1", f"a{i:02d}"))
    for i in range(3):
        local_azure.seed_nsg(nsg_body("sub1", "rg2", f"b{i}"))
    local_azure.seed_nsg(nsg_body("sub2", "rg1", "other"))
    client = local_azure.network_client("sub1")
    names = [n.name for n in client.network_security_groups.list("rg1")]
    assert names == [f"a{i:02d}" for i in range(10)]
    assert local_azure.count("arm.list", resource="nsgs") == 3  # 4 + 4 + 2
    all_names = [n.name for n in client.network_security_groups.list_all()]
    assert len(all_names) == 13 and "other" not in all_names
    assert local_azure.count("arm.list", resource="nsgs") == 3 + 4  # 4 + 4 + 4 + 1


def test_rules_list_pages(local_azure, network_client):
    local_azure.page_size = 2
    rules = [(f"r{i}", rule_body(priority=100 + i)) for i in range(5)]
    local_azure.seed_nsg(nsg_body("sub1", "rg1", "nsg1", rules))
    assert [r.name for r in network_client.security_rules.list("rg1", "nsg1")] == [f"r{i}" for i in range(5)]
    assert local_azure.count("arm.list", resource="rules") == 3
    assert len(list(network_client.default_security_rules.list("rg1", "nsg1"))) == 6


def test_paths_are_case_insensitive_and_ids_keep_creation_casing(local_azure):
    local_azure.seed_nsg(nsg_body("Sub-A", "My-RG", "Web-NSG", [("SSH", rule_body())]))
    client = local_azure.network_client("sub-a")
    got = client.network_security_groups.get("my-rg", "web-nsg")
    assert (
        got.id
        == "/subscriptions/Sub-A/resourceGroups/My-RG/providers/"
        + "Microsoft.Network/networkSecurityGroups/Web-NSG"
    )
    assert client.security_rules.get("MY-RG", "WEB-NSG", "ssh").name == "SSH"
    session = requests.Session()
    url = (
        f"{local_azure.url}/SUBSCRIPTIONS/sub-a/resourcegroups/my-rg/PROVIDERS/microsoft.network/"
        "networksecuritygroups/web-nsg?api-version=2024-05-01"
    )
    resp = session.get(
        url, headers={"Authorization": f"Bearer {local_azure.token}"}, verify=local_azure.ca_path
    )
    assert resp.status_code == 200 and resp.json()["name"] == "Web-NSG"


def test_get_body_matches_reference_shape(local_azure, network_client):
    with open(f"{REFERENCE_DIR}/arm-nsg-get.json") as f:
        ref = json.load(f)["responses"]["200"]["body"]
    local_azure.seed_nsg(ref)
    resp = requests.get(
        f"{local_azure.url}{ref['id']}?api-version=2024-05-01",
        headers={"Authorization": f"Bearer {local_azure.token}"},
        verify=local_azure.ca_path,
    )
    body = resp.json()
    assert set(ref) <= set(body) and body["etag"].startswith('W/"')
    assert body["properties"]["provisioningState"] == "Succeeded" and body["properties"]["resourceGuid"]
    rule = body["properties"]["securityRules"][0]
    assert rule["type"] == "Microsoft.Network/networkSecurityGroups/securityRules"
    for k, v in ref["properties"]["securityRules"][0]["properties"].items():
        assert rule["properties"][k] == v
    for plural in (
        "sourcePortRanges",
        "destinationPortRanges",
        "sourceAddressPrefixes",
        "destinationAddressPrefixes",
    ):
        assert rule["properties"][plural] == []
    defaults = body["properties"]["defaultSecurityRules"]
    ref_defaults = ref["properties"]["defaultSecurityRules"]
    assert [d["name"] for d in defaults] == [d["name"] for d in ref_defaults]
    for mine, theirs in zip(defaults, ref_defaults, strict=True):
        assert mine["id"] == theirs["id"]
        for k, v in theirs["properties"].items():
            assert mine["properties"][k] == v


def test_missing_api_version_is_400(local_azure, seeded):
    resp = requests.get(
        f"{local_azure.url}{seeded}",
        headers={"Authorization": f"Bearer {local_azure.token}"},
        verify=local_azure.ca_path,
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["code"] == "MissingApiVersionParameter"


BAD_RULES = [
    ("port open range", {"destinationPortRange": "22-"}, "SecurityRuleInvalidPortRange"),
    ("port too big", {"destinationPortRange": "70000"}, "SecurityRuleInvalidPortRange"),
    ("port not a number", {"destinationPortRange": "abc"}, "SecurityRuleInvalidPortRange"),
    ("port range reversed", {"destinationPortRange": "30-20"}, "SecurityRuleInvalidPortRange"),
    (
        "port list item bad",
        {"destinationPortRange": None, "destinationPortRanges": ["22", "x"]},
        "SecurityRuleInvalidPortRange",
    ),
    ("priority too low", {"priority": 99}, "SecurityRuleInvalidPriority"),
    ("priority too high", {"priority": 4097}, "SecurityRuleInvalidPriority"),
    (
        "star in prefix list",
        {"sourceAddressPrefix": None, "sourceAddressPrefixes": ["10.0.0.0/8", "*"]},
        "SecurityRuleParameterContainsUnsupportedValue",
    ),
    (
        "tag in prefix list",
        {"sourceAddressPrefix": None, "sourceAddressPrefixes": ["Internet"]},
        "SecurityRuleParameterContainsUnsupportedValue",
    ),
    (
        "star in port list",
        {"destinationPortRange": None, "destinationPortRanges": ["*"]},
        "SecurityRuleParameterContainsUnsupportedValue",
    ),
    (
        "single and plural",
        {"sourceAddressPrefixes": ["10.0.0.0/8"]},
        "SecurityRuleParameterContainsUnsupportedValue",
    ),
    ("bad prefix", {"sourceAddressPrefix": "10.0.0.300/8"}, "SecurityRuleInvalidAddressPrefix"),
    ("unknown tag", {"sourceAddressPrefix": "Internets"}, "SecurityRuleInvalidAddressPrefix"),
    ("no source", {"sourceAddressPrefix": None}, "SecurityRuleParametersMissing"),
    ("bad protocol", {"protocol": "Sctp"}, "SecurityRuleParameterContainsUnsupportedValue"),
    ("bad access", {"access": "Permit"}, "SecurityRuleParameterContainsUnsupportedValue"),
    ("bad direction", {"direction": "Sideways"}, "SecurityRuleParameterContainsUnsupportedValue"),
]


@pytest.mark.parametrize(("case", "change", "code"), BAD_RULES, ids=[c[0] for c in BAD_RULES])
def test_rule_validation_errors(network_client, seeded, case, change, code):
    props = {k: v for k, v in {**rule_body(priority=200), **change}.items() if v is not None}
    with pytest.raises(HttpResponseError) as err:
        network_client.security_rules.begin_create_or_update(
            "rg1", "nsg1", "bad", SecurityRule({"properties": props})
        )
    assert err.value.status_code == 400
    assert err.value.error.code == code, err.value.message


def test_duplicate_priority_same_direction_conflicts(network_client, seeded):
    with pytest.raises(HttpResponseError) as err:
        network_client.security_rules.begin_create_or_update("rg1", "nsg1", "dup", _rule(priority=100))
    assert err.value.error.code == "SecurityRuleConflict"
    # same priority, other direction: fine
    network_client.security_rules.begin_create_or_update(
        "rg1", "nsg1", "out", _rule(priority=100, direction="Outbound")
    ).result()
    # duplicates inside one NSG PUT are rejected too
    with pytest.raises(HttpResponseError) as err:
        network_client.network_security_groups.begin_create_or_update(
            "rg1", "n2", NetworkSecurityGroup(location="westeurope", security_rules=[_rule("a"), _rule("b")])
        )
    assert err.value.error.code == "SecurityRuleConflict"


@pytest.mark.parametrize(
    "change",
    [
        {"protocol": "tcp", "sourceAddressPrefix": "internet"},
        {"protocol": "*", "sourceAddressPrefix": "AzureCloud.westeurope"},
        {"protocol": "Icmp", "destinationPortRange": "0-65535"},
        {"sourceAddressPrefix": None, "sourceAddressPrefixes": ["10.0.0.0/8", "2001:db8::/32", "1.2.3.4"]},
        {"destinationPortRange": None, "destinationPortRanges": ["22", "3389", "5985-5986"]},
    ],
)
def test_valid_rule_variants(network_client, seeded, change):
    props = {k: v for k, v in {**rule_body(priority=300), **change}.items() if v is not None}
    rule = network_client.security_rules.begin_create_or_update(
        "rg1", "nsg1", "ok", SecurityRule({"properties": props})
    ).result()
    assert rule.protocol in ("Tcp", "*", "Icmp")


def test_invalid_names(network_client, seeded):
    with pytest.raises(HttpResponseError) as err:
        network_client.security_rules.begin_create_or_update("rg1", "nsg1", "x" * 81, _rule(priority=300))
    assert err.value.error.code == "InvalidResourceName"
    with pytest.raises(HttpResponseError) as err:
        network_client.network_security_groups.begin_create_or_update(
            "rg1", "bad-", NetworkSecurityGroup(location="westeurope")
        )
    assert err.value.error.code == "InvalidResourceName"


def test_failed_operation_surfaces_as_error(local_azure, network_client, seeded):
    local_azure.network.fail_next_operation("InternalServerError", "boom")
    with pytest.raises(HttpResponseError):
        network_client.security_rules.begin_create_or_update("rg1", "nsg1", "x", _rule(priority=400)).result()


def test_counters_by_method_and_kind(local_azure, network_client, seeded):
    network_client.network_security_groups.get("rg1", "nsg1")
    network_client.security_rules.get("rg1", "nsg1", "ssh")
    assert local_azure.counter[("GET", "arm.get")] == 2
    assert local_azure.count("arm.get", resource="rule") == 1
    local_azure.reset()
    assert local_azure.count() == 0
