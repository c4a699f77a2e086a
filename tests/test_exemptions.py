"""Exemption tags: strict parsing, expiry, muting without dropping, malformed tags as findings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from shared.exemptions import apply_exemptions, parse_exemption, parse_exemptions
from shared.model import parse_nsg
from shared.policy import Engine
from tests.nsgfactory import nsg, rule

ENGINE = Engine()
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)


def evaluate(tags, rules=None):
    n = parse_nsg(nsg(rules or [rule("AllowSSH", 300, "22", "*"), rule("AllowRDP", 310, "3389", "*")], tags=tags))
    return apply_exemptions(ENGINE.evaluate(n), now=NOW)


def test_full_format():
    e = parse_exemption("nsg-guard-exempt", " Rules=AllowSSH, AllowCI ; expires=2025-06-01; ticket=CHG-1; "
                                            "reason=vendor migration; ports=22")
    assert e.rules == ("allowssh", "allowci") and e.ports == (22,) and e.ticket == "CHG-1"
    assert e.reason == "vendor migration"
    assert not e.expired(NOW) and e.expired(datetime(2025, 6, 2, tzinfo=UTC))  # valid through that day


def test_timestamp_expiry_needs_a_time_zone():
    assert parse_exemption("t", "rules=*; expires=2025-06-01T10:00:00Z; reason=x").expired(NOW)
    with pytest.raises(ValueError, match="time zone"):
        parse_exemption("t", "rules=*; expires=2025-06-01T10:00:00; reason=x")


@pytest.mark.parametrize(("value", "message"), [
    ("expires=2025-01-01; reason=x", "missing 'rules='"),
    ("rules=a; reason=x", "missing 'expires='"),
    ("rules=a; expires=2025-01-01", "ticket=' or 'reason="),
    ("rules=a; expires=someday; reason=x", "invalid expires"),
    ("rules=a; expires=2025-13-01; reason=x", "invalid expires"),
    ("rules=a; expires=2025-01-01; reason=x; owner=me", "unknown key 'owner'"),
    ("rules=a; rules=b; expires=2025-01-01; reason=x", "given twice"),
    ("rules=a,*; expires=2025-01-01; reason=x", "'\\*' alone"),
    ("rules=a; expires=2025-01-01; reason=x; ports=ssh", "invalid port"),
    ("rules=a; forever", "not key=value"),
])
def test_malformed_values(value, message):
    with pytest.raises(ValueError, match=message):
        parse_exemption("nsg-guard-exempt", value)


def test_several_tags_and_unrelated_tags():
    exemptions, problems = parse_exemptions({"nsg-guard-exempt": "rules=a; expires=2030-01-01; reason=x",
                                             "NSG-Guard-Exempt-2": "rules=b; expires=2030-01-01; ticket=T",
                                             "nsg-guard-exemptions": "ignored", "owner": "me"})
    assert [e.rules for e in exemptions] == [("b",), ("a",)] and problems == []


def test_exempt_finding_is_muted_not_dropped():
    ev = evaluate({"nsg-guard-exempt": "rules=AllowSSH; expires=2030-01-01; ticket=CHG-9"})
    by_rule = {f.rule.name: f for f in ev.findings}
    assert by_rule["AllowSSH"].status == "Exempt" and by_rule["AllowSSH"].details["exemption"]["ticket"] == "CHG-9"
    assert by_rule["AllowRDP"].status == "Open" and not ev.compliant


def test_ports_limit_the_exemption():
    ev = evaluate({"nsg-guard-exempt": "rules=*; expires=2030-01-01; reason=x; ports=3389"})
    assert {(f.port, f.status) for f in ev.findings} == {(22, "Open"), (3389, "Exempt")}


def test_expired_exemption_stops_applying_and_says_so():
    ev = evaluate({"nsg-guard-exempt": "rules=*; expires=2025-05-31; reason=x"})
    assert {f.status for f in ev.findings} == {"Open"}
    assert all(f.details["expiredExemption"]["expires"].startswith("2025-05-31") for f in ev.findings)


def test_malformed_tag_is_a_finding_of_its_own():
    ev = evaluate({"nsg-guard-exempt": "rules=AllowSSH; reason=forgot the expiry"})
    (tag,) = [f for f in ev.findings if f.port_kind == "exemption-tag"]
    assert tag.status == "Open" and tag.severity == "low" and tag.counts_against_compliance
    assert "missing 'expires='" in tag.reason and tag.to_contract()["ruleName"] == "tag:nsg-guard-exempt"
    assert {f.rule.name: f.status for f in ev.findings}["AllowSSH"] == "Open"


def test_latent_findings_keep_their_status():
    ev = evaluate({"nsg-guard-exempt": "rules=*; expires=2030-01-01; reason=x"},
                  [rule("Deny", 200, "22", "*", access="Deny"), rule("AllowSSH", 300, "22", "*")])
    assert [f.status for f in ev.findings] == ["Latent"]


def test_no_tags_returns_the_evaluation_unchanged():
    n = parse_nsg(nsg([rule("AllowSSH", 300, "22", "*")]))
    ev = ENGINE.evaluate(n)
    assert apply_exemptions(ev) is ev
