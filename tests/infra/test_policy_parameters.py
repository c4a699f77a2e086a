"""Issue 12.5: an empty port entry must never reach Azure Policy.

Azure Policy treats a failed template function as an implicit deny, whatever the effect: with ports
['22', ''] the rule's int(current('port')) fails on every Allow-from-internet rule it evaluates, so writes
unrelated to the watched ports are refused. Bicep filters the entries (main.bicep and modules/policy.bicep),
and the preprovision hook refuses what the app would refuse (tests/infra/test_hooks.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.infra.test_infra_policy import flags, nsg, rule

REPO = Path(__file__).resolve().parents[2]


def test_the_rule_converts_every_watched_port_with_int():
    """So an empty entry in `ports` would be int('') for every Allow-from-internet rule Azure evaluates."""
    text = (REPO / "infra" / "policy" / "deny-internet-ssh.json").read_text()
    assert text.count("int(current('port'))") >= 4
    with pytest.raises(ValueError):
        int("")


def bicep_ports(ssh: str, management: str) -> list[str]:
    """What main.bicep computes, step by step as written there (checked against its text below)."""
    entries = [p for p in f"{ssh},{management}".replace(" ", "").split(",") if p]  # filter(..., !empty)
    numbers = [int(p) for p in entries]  # a non-number fails the deployment here
    out = ["22"]
    for n in numbers:  # union(['22'], ...) keeps the first occurrence
        if str(n) not in out:
            out.append(str(n))
    return out


def test_main_bicep_filters_empty_entries_and_normalises_numbers():
    main = (REPO / "infra" / "main.bicep").read_text()
    assert ("var portEntries = filter(split(replace('${sshPorts},${managementPorts}', ' ', ''), ','), "
            "p => !empty(p))") in main
    assert "var portNumbers = [for p in portEntries: int(p)]" in main
    assert "var portStrings = [for n in portNumbers: string(n)]" in main
    assert "var policyPorts = union(['22'], portStrings)" in main
    policy = (REPO / "infra" / "modules" / "policy.bicep").read_text()
    assert "var cleanPorts = filter(ports, p => !empty(trim(string(p))))" in policy
    assert re.search(r"ports: \{ value: cleanPorts \}", policy)


@pytest.mark.parametrize(("ssh", "management", "expected"), [
    ("", "3389,5985,5986,23", ["22", "3389", "5985", "5986", "23"]),
    ("2222,", "3389", ["22", "2222", "3389"]),
    ("", "", ["22"]),
    (" 2222 , ,", ",,3389,", ["22", "2222", "3389"]),
    ("022", "", ["22"]),
])
def test_the_policy_never_gets_an_empty_entry(ssh, management, expected):
    ports = bicep_ports(ssh, management)
    assert ports == expected
    assert flags(nsg(rule(port="8000-8100", src="10.0.0.0/8")), {"ports": ports}) is False
    assert flags(nsg(rule(port="22", src="*")), {"ports": ports}) is True


def test_a_non_number_fails_the_deployment_not_the_policy():
    with pytest.raises(ValueError):
        bicep_ports("2222,abc", "")
