"""Effective exposure (pure): NIC + subnet NSG pairing, public IPs, unattached NSGs."""

from __future__ import annotations

from typing import Any

import pytest

from shared.core.effective import apply_effective, exposure_of, needs_pairing, public_paths
from shared.core.inventory import AttachmentIndex
from shared.core.model import parse_nsg
from shared.core.policy import Engine
from tests.nsgfactory import SUB, nsg, rule

NET = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Network"
ENGINE = Engine()
PORTS = tuple(wp.port for wp in ENGINE.policy.watched)


def make(name: str, rules: list[dict[str, Any]], subnets: tuple[str, ...] = (), nics: tuple[str, ...] = ()):
    body = nsg(rules, name=name)
    body["properties"]["subnets"] = [{"id": f"{NET}/virtualNetworks/v/subnets/{s}"} for s in subnets]
    body["properties"]["networkInterfaces"] = [{"id": f"{NET}/networkInterfaces/{n}"} for n in nics]
    return parse_nsg(body)


def nic_row(name: str, subnet: str, nsg_name: str | None, public: bool = True) -> dict[str, Any]:
    config: dict[str, Any] = {"subnet": {"id": f"{NET}/virtualNetworks/v/subnets/{subnet}"}}
    if public:
        config["publicIPAddress"] = {"id": f"{NET}/publicIPAddresses/{name}-ip"}
    props: dict[str, Any] = {"ipConfigurations": [{"name": "c", "properties": config}]}
    if nsg_name:
        props["networkSecurityGroup"] = {"id": f"{NET}/networkSecurityGroups/{nsg_name}"}
    return {"id": f"{NET}/networkInterfaces/{name}", "type": "microsoft.network/networkinterfaces",
            "properties": props}


def ssh(source: str = "*", name: str = "AllowSSH", nsg_name: str = "n", access: str = "Allow") -> dict[str, Any]:
    return rule(name, 300, "22", source, access=access, nsg=nsg_name)


def judge(target, others=(), nics=(), complete: bool = True, available: bool = True):
    index = AttachmentIndex.from_rows(nics) if available else AttachmentIndex.unavailable()
    for other in (target, *others):
        index.note_subnets(other.id, other.subnet_ids)
    allowed = {o.id.lower(): exposure_of(ENGINE.evaluator, o, PORTS).allowed for o in (target, *others)}
    paths = public_paths(target, index, inventory_complete=complete) if available else ()
    result = apply_effective(ENGINE.evaluate(target), ENGINE.evaluator, index_available=available, paths=paths,
                             own=exposure_of(ENGINE.evaluator, target, PORTS), paired=allowed.get)
    (finding,) = result.evaluation.findings
    return finding, result


def test_nic_and_subnet_both_allow_is_critical():
    nic_nsg = make("nic-nsg", [ssh(nsg_name="nic-nsg")], nics=("vm1",))
    subnet_nsg = make("subnet-nsg", [ssh(nsg_name="subnet-nsg")], subnets=("s1",))
    nics = [nic_row("vm1", "s1", "nic-nsg")]
    for target, other in ((nic_nsg, subnet_nsg), (subnet_nsg, nic_nsg)):
        f, result = judge(target, [other], nics)
        assert (f.severity, f.status, f.details["effective"], f.details["effectiveExposure"]) == \
            ("critical", "Open", "reachable", "internet")
        assert f.details["severityBeforeEffective"] == "high" and "reachable" in f.reason
        assert result.attachments["effective"] == "reachable"
        assert result.attachments["publicPaths"][0]["pairedAllows"] == {"22": "internet"}
        assert not result.evaluation.compliant


def test_paired_nsg_denies_keeps_high_and_says_blocked():
    nic_nsg = make("nic-nsg", [ssh(nsg_name="nic-nsg")], nics=("vm1",))
    subnet_nsg = make("subnet-nsg", [ssh("Internet", access="Deny", nsg_name="subnet-nsg")], subnets=("s1",))
    f, result = judge(nic_nsg, [subnet_nsg], [nic_row("vm1", "s1", "nic-nsg")])
    assert (f.severity, f.details["effective"]) == ("high", "blocked-by-pair")
    assert result.attachments["publicPaths"][0]["pairedAllows"] == {}


def test_paired_nsg_narrowing_to_trusted_sources_is_reachable_but_not_critical():
    nic_nsg = make("nic-nsg", [ssh(nsg_name="nic-nsg")], nics=("vm1",))
    subnet_nsg = make("subnet-nsg", [ssh("203.0.114.7/32", nsg_name="subnet-nsg")], subnets=("s1",))
    f, _ = judge(nic_nsg, [subnet_nsg], [nic_row("vm1", "s1", "nic-nsg")])
    assert (f.severity, f.details["effective"], f.details["effectiveExposure"]) == ("high", "reachable", "trusted")


def test_subnet_without_nsg_lets_everything_through():
    nic_nsg = make("nic-nsg", [ssh(nsg_name="nic-nsg")], nics=("vm1",))
    f, result = judge(nic_nsg, [], [nic_row("vm1", "s9", "nic-nsg")])
    assert f.severity == "critical"
    assert result.attachments["publicPaths"][0]["pairedAllows"] == "everything (no NSG)"
    f, _ = judge(nic_nsg, [], [nic_row("vm1", "s9", "nic-nsg")], complete=False)  # partial inventory
    assert (f.severity, f.details["effective"]) == ("high", "unknown")


def test_no_public_ip_keeps_severity():
    nic_nsg = make("nic-nsg", [ssh(nsg_name="nic-nsg")], nics=("vm1",))
    f, result = judge(nic_nsg, [], [nic_row("vm1", "s1", "nic-nsg", public=False)])
    assert (f.severity, f.status, f.details["effective"]) == ("high", "Open", "no-public-ip")
    assert result.attachments["publicPathCount"] == 0 and result.state == "no-public-ip"


def test_unattached_keeps_its_severity_and_shows_the_attachment():
    """One answer everywhere (issue 13): the event path and scan call an unattached open SSH rule high, so
    the sweep does too (a downgrade made MTTR count a remediation nobody made); attachment is its own field."""
    orphan = make("orphan", [ssh(nsg_name="orphan")])
    f, result = judge(orphan)
    assert (f.severity, f.status, f.active) == ("high", "Open", True)
    assert f.details == {"effective": "unattached"}
    assert not result.evaluation.compliant and result.attachments["effective"] == "unattached"
    assert result.attachments["attachment"] == "unattached"


def test_nic_inventory_unavailable_is_unknown_not_downgraded():
    nic_nsg = make("nic-nsg", [ssh(nsg_name="nic-nsg")], nics=("vm1",))
    f, _ = judge(nic_nsg, available=False)
    assert (f.severity, f.details["effective"]) == ("high", "unknown")


def test_pairing_needed_only_with_public_nics_behind():
    nic_nsg = make("nic-nsg", [ssh(nsg_name="nic-nsg")], nics=("vm1",))
    assert needs_pairing(nic_nsg, AttachmentIndex.from_rows([nic_row("vm1", "s1", "nic-nsg")]))
    assert not needs_pairing(nic_nsg, AttachmentIndex.from_rows([nic_row("vm1", "s1", "nic-nsg", public=False)]))


@pytest.mark.parametrize("source", ["10.0.0.0/8", "VirtualNetwork"])
def test_private_sources_give_no_finding_to_pair(source):
    n = make("nic-nsg", [ssh(source, nsg_name="nic-nsg")], nics=("vm1",))
    assert ENGINE.evaluate(n).findings == ()
