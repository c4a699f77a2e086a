"""Resource Graph inventory (pure): scope, queries, NIC rows."""

from __future__ import annotations

import pytest

from shared.core.errors import InputError
from shared.core.inventory import NSG_QUERY, PUBLIC_NIC_QUERY, AttachmentIndex, Scope, parse_public_nic
from shared.core.model import parse_nsg
from tests.nsgfactory import reference

NET = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network"


def test_scope_request_bodies():
    assert Scope().request_scopes() == [{}] and Scope().kind == "tenant"
    assert Scope(management_groups=("mg1",)).request_scopes() == [{"managementGroups": ["mg1"]}]
    subs = tuple(f"sub-{i}" for i in range(2500))
    batches = Scope(subscriptions=subs).request_scopes()
    assert [len(b["subscriptions"]) for b in batches] == [1000, 1000, 500]
    assert Scope(subscriptions=("a",)).describe() == {"kind": "subscriptions", "subscriptions": ["a"]}


def test_queries_name_their_resource_type_first_and_order_by_a_unique_key():
    assert NSG_QUERY.index("microsoft.network/networksecuritygroups") < 60
    assert PUBLIC_NIC_QUERY.index("microsoft.network/networkinterfaces") < 60
    for q in (NSG_QUERY, PUBLIC_NIC_QUERY):
        assert q.rstrip().endswith("order by subscriptionId asc, id asc") and "project id" in q


def test_resource_graph_rows_parse_with_attachments():
    row = reference("arm-nsg-get.json")["responses"]["200"]["body"]
    row = {**row, "type": "microsoft.network/networksecuritygroups", "subscriptionId": "s1", "resourceGroup": "rg"}
    row["properties"] = {**row["properties"], "subnets": [{"id": f"{NET}/virtualNetworks/v/subnets/a"}],
                         "networkInterfaces": [{"id": f"{NET}/networkInterfaces/n1"}]}
    nsg = parse_nsg(row)
    assert nsg.subnet_ids == (f"{NET}/virtualNetworks/v/subnets/a",) and nsg.nic_ids == (f"{NET}/networkInterfaces/n1",)


def nic(configs, nsg=None, **extra):
    props = {"ipConfigurations": [{"name": f"c{i}", "properties": c} for i, c in enumerate(configs)]}
    if nsg:
        props["networkSecurityGroup"] = {"id": nsg}
    return {"id": f"{NET}/networkInterfaces/NIC1", "type": "Microsoft.Network/networkInterfaces",
            "properties": props, **extra}


def test_public_nic_keeps_only_public_ip_configurations_lower_cased():
    row = nic([{"subnet": {"id": f"{NET}/virtualNetworks/v/subnets/A"}, "publicIPAddress": {"id": "/x/PIP"}},
               {"subnet": {"id": f"{NET}/virtualNetworks/v/subnets/B"}}],
              nsg=f"{NET}/networkSecurityGroups/N")
    parsed = parse_public_nic(row)
    assert parsed is not None
    assert parsed.id == f"{NET}/networkInterfaces/nic1".lower()
    assert parsed.public_subnets == (f"{NET}/virtualNetworks/v/subnets/a".lower(),)
    assert parsed.nsg_id == f"{NET}/networkSecurityGroups/n".lower() and parsed.public_ips == ("/x/pip",)
    assert parse_public_nic(nic([{"subnet": {"id": "/s"}}])) is None


def test_bad_nic_rows_are_input_errors():
    with pytest.raises(InputError, match="not a network interface"):
        parse_public_nic({"id": "/x", "type": "microsoft.network/networksecuritygroups"})
    with pytest.raises(InputError, match="ipConfigurations"):
        parse_public_nic({"id": "/x", "properties": {"ipConfigurations": {}}})


def test_index_by_subnet_and_subnet_nsgs():
    index = AttachmentIndex.from_rows([
        nic([{"subnet": {"id": "/S1"}, "publicIPAddress": {"id": "/p"}}], nsg="/NSG-A"),
        {**nic([{"subnet": {"id": "/s2"}}]), "id": "/nic2"},
    ])
    assert list(index.nics) == [f"{NET}/networkInterfaces/nic1".lower()]
    assert [n.nsg_id for n in index.nics_in("/s1")] == ["/nsg-a"] and index.nics_in("/s2") == []
    assert index.is_nic_nsg_of_public_nic("/NSG-A")
    assert index.note_subnets("/Subnet-NSG", ["/S1", "/s2"]) and index.subnet_nsg == {"/s1": "/subnet-nsg"}
