"""Exposure semantics of docs/product.md §2, table-driven: each case is an NSG and the exact findings."""

import pytest

from shared.core.model import parse_nsg
from shared.core.policy import Engine, Policy, watched_ports
from tests.nsgfactory import nsg, rule

ENGINE = Engine(Policy(watched=watched_ports(ssh_ports=(2222,))))

# (id, rules, expected findings as (rule, port, exposure, active, severity), compliant)
CASES = [
    ("star", [rule("r", 300, "22", "*")], [("r", 22, "internet", True, "high")], False),
    ("any", [rule("r", 300, "22", "Any")], [("r", 22, "internet", True, "high")], False),
    ("internet-tag", [rule("r", 300, "22", "Internet")], [("r", 22, "internet", True, "high")], False),
    ("all-ipv4", [rule("r", 300, "22", "0.0.0.0/0")], [("r", 22, "internet", True, "high")], False),
    ("all-ipv6", [rule("r", 300, "22", "::/0")], [("r", 22, "internet", True, "high")], False),
    ("split-halves", [rule("a", 300, "22", "0.0.0.0/1"), rule("b", 310, "22", "128.0.0.0/1")],
     [("a", 22, "internet", True, "high"), ("b", 22, "broad", True, "medium")], False),
    ("split-quarters-add-up", [rule(f"q{i}", 300 + i, "22", f"{64 * i}.0.0.0/2") for i in range(4)],
     [("q0", 22, "internet", True, "high"), ("q1", 22, "internet", True, "high"),
      ("q2", 22, "internet", True, "high"), ("q3", 22, "internet", True, "high")], False),
    ("split-but-not-internet", [rule("a", 300, "22", "128.0.0.0/2"), rule("b", 310, "22", "192.0.0.0/3")],
     [("a", 22, "broad", True, "medium"), ("b", 22, "broad", True, "medium")], False),
    ("split-plural-in-one-rule", [rule("r", 300, "22", ["0.0.0.0/1", "128.0.0.0/1"])],
     [("r", 22, "internet", True, "high")], False),
    ("port-star", [rule("r", 300, "*", "*")],
     [("r", 22, "internet", True, "high"), ("r", 2222, "internet", True, "medium"),
      ("r", 3389, "internet", True, "high"), ("r", 5985, "internet", True, "high"),
      ("r", 5986, "internet", True, "high"), ("r", 23, "internet", True, "high")], False),
    ("range-covers-22", [rule("r", 300, "20-25", "*")],
     [("r", 22, "internet", True, "high"), ("r", 23, "internet", True, "high")], False),
    ("range-misses-22", [rule("r", 300, "24-2221", "*")], [], True),
    ("plural-ranges", [rule("r", 300, ["80", "443", "3380-3390"], "*")],
     [("r", 3389, "internet", True, "high")], False),
    ("udp-never-ssh", [rule("r", 300, "22", "*", protocol="Udp")], [], True),
    ("icmp-never-ssh", [rule("r", 300, "*", "*", protocol="Icmp")], [], True),
    ("esp-ah", [rule("e", 300, "*", "*", protocol="Esp"), rule("a", 301, "*", "*", protocol="Ah")], [], True),
    ("protocol-star", [rule("r", 300, "22", "*", protocol="*")], [("r", 22, "internet", True, "high")], False),
    ("outbound-ignored", [rule("r", 300, "22", "*", direction="Outbound")], [], True),
    ("deny-rule-no-finding", [rule("r", 300, "22", "*", access="Deny")], [], True),
    ("full-shadow-by-deny", [rule("d", 100, "22", "*", access="Deny"), rule("a", 200, "22", "*")],
     [("a", 22, "internet", False, "info")], True),
    ("shadow-by-internet-deny", [rule("d", 100, "22", "Internet", access="Deny"), rule("a", 200, "22", "*")],
     [("a", 22, "internet", False, "info")], True),
    ("partial-shadow-by-source", [rule("d", 100, "22", "0.0.0.0/1", access="Deny"), rule("a", 200, "22", "*")],
     [("a", 22, "internet", True, "high")], False),
    ("partial-shadow-leaves-broad", [rule("d", 100, "22", ["0.0.0.0/1", "::/0"], access="Deny"),
                                     rule("a", 200, "22", "*")],
     [("a", 22, "broad", True, "medium")], False),
    ("shadow-by-port-range", [rule("d", 100, "1-1024", "*", access="Deny"), rule("a", 200, ["22", "3389"], "*")],
     [("a", 22, "internet", False, "info"), ("a", 3389, "internet", True, "high")], False),
    ("no-shadow-by-udp-deny", [rule("d", 100, "22", "*", access="Deny", protocol="Udp"),
                               rule("a", 200, "22", "*")], [("a", 22, "internet", True, "high")], False),
    ("shadow-by-star-protocol", [rule("d", 100, "22", "*", access="Deny", protocol="*"),
                                 rule("a", 200, "22", "*")], [("a", 22, "internet", False, "info")], True),
    ("deny-after-allow-does-nothing", [rule("a", 100, "22", "*"), rule("d", 200, "22", "*", access="Deny")],
     [("a", 22, "internet", True, "high")], False),
    ("higher-allow-takes-attribution", [rule("a1", 100, "22", "52.0.0.0/8"), rule("a2", 200, "22", "*")],
     [("a1", 22, "broad", True, "medium"), ("a2", 22, "internet", True, "high")], False),
    ("asg-source", [rule("r", 300, "22", asgs=["/subscriptions/s/resourceGroups/r/providers/"
                                                "Microsoft.Network/applicationSecurityGroups/admins"])], [], True),
    ("private-sources", [rule("r", 300, "22", ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])], [], True),
    ("virtual-network-tag", [rule("r", 300, "22", "VirtualNetwork")], [], True),
    ("service-tag", [rule("r", 300, "22", "AzureLoadBalancer")], [], True),
    ("regional-service-tag", [rule("r", 300, "22", "Storage.WestEurope")], [], True),
    ("azure-cloud-is-broad", [rule("r", 300, "22", "AzureCloud")], [("r", 22, "broad", True, "medium")], False),
    ("azure-cloud-regional", [rule("r", 300, "3389", "AzureCloud.westeurope")],
     [("r", 3389, "broad", True, "medium")], False),
    ("azure-cloud-shadowed-by-same-tag", [rule("d", 100, "22", "AzureCloud", access="Deny"),
                                          rule("a", 200, "22", "AzureCloud.westeurope")],
     [("a", 22, "broad", False, "info")], True),
    ("azure-cloud-shadowed-by-internet", [rule("d", 100, "22", "Internet", access="Deny"),
                                          rule("a", 200, "22", "AzureCloud")], [("a", 22, "broad", False, "info")],
     True),
    ("single-public-ip", [rule("r", 300, "22", "84.17.45.12")], [("r", 22, "trusted", True, "low")], False),
    ("public-slash-24", [rule("r", 300, "22", "52.174.10.0/24")], [("r", 22, "trusted", True, "low")], False),
    ("public-slash-23-is-broad", [rule("r", 300, "22", "52.174.10.0/23")], [("r", 22, "broad", True, "medium")],
     False),
    ("public-slash-16", [rule("r", 300, "22", "52.174.0.0/16")], [("r", 22, "broad", True, "medium")], False),
    ("public-slash-8", [rule("r", 300, "22", "52.0.0.0/8")], [("r", 22, "broad", True, "medium")], False),
    ("ipv6-slash-48-trusted", [rule("r", 300, "22", "2a01:111:f00::/48")], [("r", 22, "trusted", True, "low")],
     False),
    ("ipv6-slash-47-broad", [rule("r", 300, "22", "2a01:110::/47")], [("r", 22, "broad", True, "medium")], False),
    ("ipv6-documentation-range", [rule("r", 300, "22", "2001:db8::/32")], [], True),
    ("custom-ssh-open", [rule("r", 300, "2222", "*")], [("r", 2222, "internet", True, "medium")], False),
    ("custom-ssh-broad", [rule("r", 300, "2222", "52.0.0.0/8")], [("r", 2222, "broad", True, "low")], False),
    ("custom-ssh-trusted-is-compliant", [rule("r", 300, "2222", "52.174.10.16/28")], [], True),
    ("management-trusted-is-compliant", [rule("r", 300, "3389", "84.17.45.12")], [], True),
    ("management-broad", [rule("r", 300, "5986", "52.0.0.0/8")], [("r", 5986, "broad", True, "medium")], False),
    ("latent-custom-trusted-not-reported", [rule("d", 100, "*", "*", access="Deny"),
                                            rule("a", 200, "2222", "52.174.10.16/28")], [], True),
    # Destinations: only a rule that reaches every NIC behind the NSG shadows wholesale.
    ("deny-to-one-vm-does-not-shadow-others", [rule("d", 100, "22", "*", access="Deny", dest="10.0.0.4"),
                                               rule("a", 200, "22", "*")], [("a", 22, "internet", True, "high")],
     False),
    ("deny-to-vnet-shadows", [rule("d", 100, "22", "*", access="Deny", dest="VirtualNetwork"),
                              rule("a", 200, "22", "*")], [("a", 22, "internet", False, "info")], True),
    ("allow-to-one-vm-and-allow-to-all-both-expose", [rule("a1", 100, "22", "*", dest="10.0.0.4"),
                                                      rule("a2", 200, "22", "*")],
     [("a1", 22, "internet", True, "high"), ("a2", 22, "internet", True, "high")], False),
    ("deny-to-subnet-shadows-allow-to-vm-in-it", [rule("d", 100, "22", "*", access="Deny", dest="10.0.0.0/24"),
                                                  rule("a", 200, "22", "*", dest="10.0.0.4")],
     [("a", 22, "internet", False, "info")], True),
    ("deny-to-vm-does-not-shadow-allow-to-subnet", [rule("d", 100, "22", "*", access="Deny", dest="10.0.0.4"),
                                                    rule("a", 200, "22", "*", dest="10.0.0.0/24")],
     [("a", 22, "internet", True, "high")], False),
    ("deny-to-asg-does-not-shadow-all", [rule("d", 100, "22", "*", access="Deny", dest_asgs=["/x/asg-web"]),
                                         rule("a", 200, "22", "*")], [("a", 22, "internet", True, "high")], False),
    ("deny-to-same-asg-shadows", [rule("d", 100, "22", "*", access="Deny", dest_asgs=["/x/asg-web"]),
                                  rule("a", 200, "22", "*", dest_asgs=["/X/ASG-WEB"])],
     [("a", 22, "internet", False, "info")], True),
    ("deny-to-both-families-is-universal", [rule("d", 100, "22", "*", access="Deny", dest=["0.0.0.0/0", "::/0"]),
                                            rule("a", 200, "22", "*")], [("a", 22, "internet", False, "info")],
     True),
    ("mixed-case-enums", [rule("r", 300, "22", "*", access="allow", protocol="tcp", direction="inbound")],
     [("r", 22, "internet", True, "high")], False),
]


@pytest.mark.parametrize(("rules", "expected", "compliant"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_exposure_cases(rules, expected, compliant):
    result = ENGINE.evaluate(parse_nsg(nsg(rules)))
    got = sorted((f.rule.name, f.port, f.exposure, f.active, f.severity) for f in result.findings)
    assert got == sorted(expected)
    assert result.compliant is compliant


def test_default_rules_only_is_compliant():
    result = ENGINE.evaluate(parse_nsg(nsg([])))
    assert result.findings == () and result.compliant


def test_without_default_rules_nothing_is_allowed():
    assert ENGINE.evaluate(parse_nsg(nsg([], defaults=False))).findings == ()


def test_latent_finding_names_the_shadowing_rule():
    result = ENGINE.evaluate(parse_nsg(nsg([rule("DenySSH", 100, "22", "Internet", access="Deny"),
                                            rule("AllowSSH", 200, "22", "*")])))
    (f,) = result.findings
    assert f.status == "Latent" and "shadowed by DenySSH (100)" in f.reason


def test_split_quarters_name_their_partners():
    result = ENGINE.evaluate(parse_nsg(nsg([rule(f"q{i}", 300 + i, "22", f"{64 * i}.0.0.0/2")
                                            for i in range(3)] + [rule("q3", 303, "22", "192.0.0.0/2")])))
    reasons = {f.rule.name: f.reason for f in result.findings}
    assert "together with" in reasons["q1"] and "q0" in reasons["q1"]


def test_finding_ids_are_stable_and_distinct():
    a = ENGINE.evaluate(parse_nsg(nsg([rule("AllowSSH", 300, "*", "*")]))).findings
    b = ENGINE.evaluate(parse_nsg(nsg([rule("allowssh", 310, "*", "52.0.0.0/8"), rule("other", 300, "80", "*")])))
    assert sorted(f.finding_id for f in a) == sorted(f.finding_id for f in b.findings)
    assert len({f.finding_id for f in a}) == len(a) == 6


def test_reason_names_a_narrow_destination():
    result = ENGINE.evaluate(parse_nsg(nsg([rule("a", 100, "22", "*", dest="10.0.0.4")])))
    assert result.findings[0].reason.startswith("TCP 22 allowed from the internet to 10.0.0.4 by rule a")


def test_thousand_rule_nsg():
    rules = [rule(f"deny{i}", 100 + i, str(1000 + i), "*", access="Deny") for i in range(999)]
    rules.append(rule("late-allow", 4000, "22", "*"))
    result = ENGINE.evaluate(parse_nsg(nsg(rules)))
    assert [(f.rule.name, f.port, f.active) for f in result.findings] == [("late-allow", 22, True)]
    rules[0] = rule("deny-all-first", 100, "*", "*", access="Deny")
    result = ENGINE.evaluate(parse_nsg(nsg(rules)))
    assert [(f.rule.name, f.active) for f in result.findings] == [("late-allow", False)]
