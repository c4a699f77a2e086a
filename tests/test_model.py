"""Parsers for every NSG shape, and their strictness."""

import copy
import json
from pathlib import Path

import pytest

from shared.core.errors import InputError
from shared.core.model import iter_nsg_documents, parse_document, parse_nsg
from tests.nsgfactory import SUB, nsg, reference, rule


def arm_sample():
    return reference("arm-nsg-get.json")["responses"]["200"]["body"]


def test_parses_the_reference_arm_get_response():
    n = parse_nsg(arm_sample())
    assert n.name == "testnsg" and n.subscription_id == "subid" and n.resource_group == "rg1"
    assert [r.name for r in n.rules] == ["rule1"]
    assert len(n.default_rules) == 6 and all(r.is_default for r in n.default_rules)
    r = n.rules[0]
    assert (r.priority, r.protocol, r.access, r.direction) == (130, "*", "Allow", "Inbound")
    assert [s.text for s in r.sources] == ["*"] and 80 in r.destination_ports
    assert [x.name for x in n.inbound_rules] == ["rule1", "AllowVnetInBound",
                                                   "AllowAzureLoadBalancerInBound", "DenyAllInBound"]


def test_parses_the_reference_put_body_and_derives_rule_ids():
    body = copy.deepcopy(reference("arm-nsg-put.json")["request"]["body"])
    body.update(name="testnsg", id="/subscriptions/subid/resourceGroups/rg1/providers/"
                                  "Microsoft.Network/networkSecurityGroups/testnsg")
    n = parse_nsg(body)
    assert n.rules[0].id.endswith("/networkSecurityGroups/testnsg/securityRules/rule1")
    assert n.default_rules == ()


def test_az_cli_flattened_shape_equals_arm_shape():
    arm = parse_nsg(nsg([rule("AllowSSH", 300)], tags={"owner": "ada"}))
    az = json.loads(Path("examples/az-nsg-list.json").read_text())
    parsed = parse_document(az)
    assert [p.name for p in parsed] == ["ci-gpu-01-nsg", "AzureBastionSubnet-nsg"]
    flat = {k: v for k, v in nsg([rule("AllowSSH", 300)], tags={"owner": "ada"}).items() if k != "properties"}
    src = nsg([rule("AllowSSH", 300)])["properties"]
    flat["securityRules"] = [{"name": r["name"], "id": r["id"], "etag": r["etag"], "type": r["type"],
                              "resourceGroup": "rg1", **r["properties"]} for r in src["securityRules"]]
    flat["defaultSecurityRules"] = [{"name": r["name"], "id": r["id"], **r["properties"]}
                                    for r in src["defaultSecurityRules"]]
    assert parse_nsg(flat) == arm


def test_resource_graph_rows_and_response():
    doc = json.loads(Path("examples/resource-graph.json").read_text())
    parsed = parse_document(doc)
    assert [p.name for p in parsed] == ["ci-gpu-split-nsg", "legacy-shadowed-nsg"]
    assert all(p.subscription_id == SUB for p in parsed)
    assert parse_document(doc["data"]) == parsed


def test_sdk_model_objects_are_parsed_through_their_rest_json():
    from azure.mgmt.network.models import NetworkSecurityGroup, SecurityRule

    raw = nsg([rule("AllowSSH", 300, ["22", "2222"], ["1.2.3.0/24"])])
    assert parse_nsg(NetworkSecurityGroup(raw)) == parse_nsg(raw)
    built = NetworkSecurityGroup(id=raw["id"], name="nsg1", location="westeurope", security_rules=[
        SecurityRule(name="AllowSSH", protocol="Tcp", priority=300, access="Allow", direction="Inbound",
                     source_address_prefixes=["1.2.3.0/24"], destination_port_ranges=["22", "2222"])])
    parsed = parse_nsg(built)
    assert parsed.rules[0].destination_ports == parse_nsg(raw).rules[0].destination_ports
    assert parsed.rules[0].id == raw["properties"]["securityRules"][0]["id"]


@pytest.mark.parametrize(("doc", "count"), [
    (nsg([]), 1), ([nsg([]), nsg([], name="b")], 2), ({"value": [nsg([])]}, 1), ({"value": []}, 0),
    ({"data": [nsg([])], "count": 1}, 1),
])
def test_document_shapes(doc, count):
    assert len(list(iter_nsg_documents(doc))) == count


def test_lowercase_enum_values_are_accepted():
    r = rule("x", 100, access="allow", protocol="tcp", direction="inbound")
    parsed = parse_nsg(nsg([r])).rules[0]
    assert (parsed.access, parsed.protocol, parsed.direction) == ("Allow", "Tcp", "Inbound")


def _with(props_update=None, remove=(), top=None):
    r = rule("bad", 100)
    r["properties"].update(props_update or {})
    for key in remove:
        r["properties"].pop(key)
    r.update(top or {})
    return nsg([r])


@pytest.mark.parametrize(("doc", "message"), [
    (_with({"destinationPortRange": "22-"}), "invalid port '22-'"),
    (_with({"destinationPortRange": "70000"}), "70000 is above 65535"),
    (_with({"destinationPortRange": "abc"}), "invalid port 'abc'"),
    (_with({"destinationPortRange": None, "destinationPortRanges": ["22", "x"]}), "invalid port 'x'"),
    (_with({"sourcePortRange": "99999"}), "99999 is above"),
    (_with({"sourceAddressPrefix": "Internet.WestEurope"}), "'Internet' has no regional form"),
    (_with({"sourceAddressPrefix": "10.0.0.0/40"}), "invalid address prefix"),
    (_with({"destinationAddressPrefix": "internet.eastus"}), "'Internet' has no regional form"),
    (_with({"destinationAddressPrefix": None, "destinationAddressPrefixes": ["10.0.0.0/33"]}),
     "invalid address prefix"),
    (_with({"protocol": "Tcpx"}), "invalid protocol"),
    (_with({"access": "Maybe"}), "invalid access"),
    (_with({"direction": "Sideways"}), "invalid direction"),
    (_with({"priority": "100"}), "'priority' in rule properties must be an integer"),
    (_with({"priority": True}), "must be an integer"),
    (_with({"priority": 99}), "invalid priority 99"),
    (_with({"priority": 4097}), "invalid priority 4097"),
    (_with(remove=["priority"]), "missing required field 'priority'"),
    (_with(remove=["destinationPortRange"]), "missing required field 'destinationPortRange'"),
    (_with(remove=["sourceAddressPrefix"]), "rule has no source"),
    (_with({"sourceAddressPrefixV2": "*"}), r"unknown field\(s\) \['sourceAddressPrefixV2'\]"),
    (_with(top={"kind": "x"}), r"unknown field\(s\) \['kind'\]"),
    (_with({"sourceApplicationSecurityGroups": [{"name": "x"}]}), "string 'id'"),
])
def test_invalid_rules_name_nsg_rule_and_reason(doc, message):
    with pytest.raises(InputError, match=message) as info:
        parse_nsg(doc)
    assert info.value.nsg == "nsg1" and info.value.rule == "bad"
    assert str(info.value).startswith("NSG nsg1, rule bad: ")


@pytest.mark.parametrize(("doc", "message"), [
    ({"name": "n"}, "missing required field 'id'"),
    ({"id": "/x", "name": "n", "properties": []}, "'properties' must be an object"),
    ({"id": "/x", "name": "n", "type": "Microsoft.Compute/virtualMachines"}, "not a network security group"),
    ({"id": "/x", "name": "n", "properties": {"securityRules": {}}}, "'securityRules' must be a list"),
    ({"id": "/x", "name": "n", "tags": {"a": 1}, "properties": {"securityRules": []}},
     "'tags' must be an object of string"),
    (nsg([rule("a", 100), rule("b", 100)]), "priority 100 is used by both 'a' and 'b'"),
    (nsg([rule("a", 100), rule("A", 101)]), "rule name used twice"),
])
def test_invalid_nsgs(doc, message):
    with pytest.raises(InputError, match=message):
        parse_nsg(doc)


def test_same_priority_in_different_directions_is_fine():
    parse_nsg(nsg([rule("a", 100), rule("b", 100, direction="Outbound")]))


def test_to_arm_round_trips():
    r = rule("x", 150, ["22", "2200-2299"], ["52.1.0.0/16", "8.8.8.8"])
    r["properties"]["description"] = "d"
    parsed = parse_nsg(nsg([r])).rules[0]
    again = parse_nsg(nsg([parsed.to_arm()])).rules[0]
    assert again == parsed
