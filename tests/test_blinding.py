"""Issue 9: the guard must not be blindable. One regression test per reproduced case, named after it.

Engine/CLI level here; the event and sweep paths are covered in tests/integration (test_event_path.py,
test_sweep.py, test_revert.py), each by a test with the same case in its name.
"""

from __future__ import annotations

import json
import logging

import pytest

from shared.cli import main
from shared.core.errors import InputError
from shared.core.model import parse_nsg, parse_rule
from shared.core.policy import Engine, Policy
from shared.core.remediation import RevertScope, apply_actions, plan_revert
from shared.core.unknowntokens import KIND_UNKNOWN_TOKEN
from tests.nsgfactory import nsg, rule

ENGINE = Engine()


def with_source_ports(body: dict, ports: str | list[str]) -> dict:
    props = body["properties"]
    if isinstance(ports, list):
        props.pop("sourcePortRange", None)
        props["sourcePortRanges"] = ports
    else:
        props["sourcePortRange"] = ports
    return body


SOURCE_PORT_CASE = [with_source_ports(rule("DenyInternetFromPort1", 100, "22", "Internet", access="Deny"), "1"),
                    rule("AllowSSH", 200, "22", "*")]
UNKNOWN_TAG_CASE = [rule("AllowFromNewTag", 100, "22", "AzureBastionNext"), rule("AllowSSH", 200, "22", "*")]


def active(evaluation, port: int = 22) -> list[tuple[str, str, str]]:
    return [(f.rule.name, f.exposure, f.severity) for f in evaluation.findings if f.active and f.port == port]


def scan(tmp_path, doc, *args: str) -> int:
    path = tmp_path / "nsg.json"
    path.write_text(json.dumps(doc))
    return main(["scan", str(path), "--format", "json", *args])


# --- 1. source ports --------------------------------------------------------------------------------------

def test_deny_limited_to_one_source_port_does_not_shadow_the_allow_behind_it():
    evaluation = ENGINE.evaluate(parse_nsg(nsg(SOURCE_PORT_CASE)))
    assert active(evaluation) == [("AllowSSH", "internet", "high")]
    assert not evaluation.compliant


def test_deny_covering_every_client_port_in_pieces_still_shadows():
    deny_low = with_source_ports(rule("DenyLow", 100, "22", "Internet", access="Deny"), "0-1023")
    deny_high = with_source_ports(rule("DenyHigh", 110, "22", "Internet", access="Deny"), ["1024-40000", "40001-65535"])
    evaluation = ENGINE.evaluate(parse_nsg(nsg([deny_low, deny_high, rule("AllowSSH", 200, "22", "*")])))
    assert active(evaluation) == []
    (latent,) = evaluation.findings
    assert latent.status == "Latent" and "DenyLow" in latent.reason and "DenyHigh" in latent.reason


def test_allow_limited_to_some_source_ports_still_exposes_its_sources():
    allow = with_source_ports(rule("AllowSSHEphemeral", 200, "22", "*"), "49152-65535")
    assert active(ENGINE.evaluate(parse_nsg(nsg([allow])))) == [("AllowSSHEphemeral", "internet", "high")]


def test_scan_exits_1_with_active_internet_finding_for_source_port_limited_deny(tmp_path, capsys):
    assert scan(tmp_path, nsg(SOURCE_PORT_CASE)) == 1
    out = json.loads(capsys.readouterr().out)
    assert [(f["ruleName"], f["exposure"], f["active"]) for f in out["findings"]] == [("AllowSSH", "internet", True)]


def test_revert_cannot_end_verified_while_22_stays_open_behind_a_source_port_limited_deny():
    """Deny copied from an Allow limited to client ports 1024-65535 leaves ports 0-1023 reaching the later Allow:
    the engine sees that later Allow as active, so the planner closes it too and verification is honest."""
    first = with_source_ports(rule("AllowSSHEphemeral", 300, "22", "*"), "1024-65535")
    n = parse_nsg(nsg([first, rule("AllowSSHLater", 400, "22", "*")]))
    before = ENGINE.evaluate(n)
    assert sorted(active(before)) == [("AllowSSHEphemeral", "internet", "high"), ("AllowSSHLater", "internet", "high")]
    plan = plan_revert(n, before.findings, ENGINE.evaluator, RevertScope(port_kinds=("ssh",)),
                       reevaluate=lambda x: ENGINE.evaluate(x).findings)
    assert active(ENGINE.evaluate(apply_actions(n, plan.actions))) == []
    # The first rule's deny alone is not enough, and the evaluator (the planner's verifier) says so.
    first_only = [a for a in plan.actions if a.offending_rule == "AllowSSHEphemeral"]
    assert first_only
    assert active(ENGINE.evaluate(apply_actions(n, first_only))) == [("AllowSSHLater", "internet", "high")]


# --- 2. unknown tokens ---------------------------------------------------------------------------------------

def test_unknown_tag_in_allow_is_non_public_and_reported_beside_the_open_allow():
    evaluation = ENGINE.evaluate(parse_nsg(nsg(UNKNOWN_TAG_CASE)))
    assert active(evaluation) == [("AllowSSH", "internet", "high")]
    (token,) = [f for f in evaluation.findings if f.port_kind == KIND_UNKNOWN_TOKEN]
    assert (token.rule.name, token.severity, token.exposure, token.active, token.status) == \
        ("AllowFromNewTag", "low", "unknown", True, "Open")
    assert "'AzureBastionNext'" in token.reason and token.details["unknownToken"] == "AzureBastionNext"


def test_unknown_tag_in_deny_covers_nothing():
    deny = rule("DenyNewTag", 100, "22", "SomeFutureTag", access="Deny")
    evaluation = ENGINE.evaluate(parse_nsg(nsg([deny, rule("AllowSSH", 200, "22", "*")])))
    assert active(evaluation) == [("AllowSSH", "internet", "high")]
    assert [f.rule.name for f in evaluation.findings if f.port_kind == KIND_UNKNOWN_TOKEN] == ["DenyNewTag"]


def test_unknown_destination_token_is_reported_too():
    body = rule("AllowToNewTag", 100, "22", "10.0.0.0/8", dest="FutureDestinationTag")
    evaluation = ENGINE.evaluate(parse_nsg(nsg([body])))
    (token,) = evaluation.findings
    assert token.details == {"unknownToken": "FutureDestinationTag", "field": "destination"}


def test_extra_tags_declare_the_token_known_and_silence_the_warning(caplog):
    engine = Engine(Policy(extra_service_tags=frozenset({"azurebastionnext"})))
    with caplog.at_level(logging.WARNING):
        evaluation = engine.evaluate(parse_nsg(nsg(UNKNOWN_TAG_CASE), engine.policy.extra_service_tags))
    assert active(evaluation) == [("AllowSSH", "internet", "high")]
    assert not [f for f in evaluation.findings if f.port_kind == KIND_UNKNOWN_TOKEN]
    assert "AzureBastionNext" not in caplog.text


def test_unknown_token_warning_names_the_token(caplog):
    with caplog.at_level(logging.WARNING):
        ENGINE.evaluate(parse_nsg(nsg([rule("AllowFromTagWarned", 100, "22", "WarnedFutureTag")])))
    assert "'WarnedFutureTag'" in caplog.text


def test_scan_exits_1_with_active_internet_finding_for_unknown_tag(tmp_path, capsys):
    assert scan(tmp_path, nsg(UNKNOWN_TAG_CASE)) == 1
    out = json.loads(capsys.readouterr().out)
    assert sorted((f["ruleName"], f["exposure"], f["severity"], f["active"]) for f in out["findings"]) == \
        [("AllowFromNewTag", "unknown", "low", True), ("AllowSSH", "internet", "high", True)]


@pytest.mark.parametrize("token", ["Internet.WestEurope", "internet.eastus"])
def test_internet_with_a_region_is_rejected_not_a_tag(tmp_path, capsys, token):
    assert scan(tmp_path, nsg([rule("AllowRegionInternet", 100, "22", token)])) == 2
    assert "'Internet' has no regional form" in capsys.readouterr().err


def test_azurecloud_region_is_broad_even_when_new():
    evaluation = ENGINE.evaluate(parse_nsg(nsg([rule("AllowCloud", 100, "22", "AzureCloud.newregion2")])))
    assert active(evaluation) == [("AllowCloud", "broad", "medium")]


# --- 3. unknown fields -------------------------------------------------------------------------------------------

def future_field_rule() -> dict:
    body = rule("AllowSSH", 300, "22", "*")
    body["properties"]["sourcePortRangeV2Preview"] = "*"
    return body


def test_unknown_rule_field_is_rejected_in_user_files_and_put_bodies(tmp_path, capsys):
    assert scan(tmp_path, nsg([future_field_rule()])) == 2
    assert "sourcePortRangeV2Preview" in capsys.readouterr().err
    with pytest.raises(InputError, match="unknown field"):
        parse_rule(future_field_rule(), nsg_id="/n")  # PUT bodies (the planner's apply_actions) stay strict


def test_unknown_rule_field_from_azure_is_logged_once_and_evaluated(caplog):
    with caplog.at_level(logging.WARNING):
        first = parse_nsg(nsg([future_field_rule()]), strict=False)
        parse_nsg(nsg([future_field_rule()]), strict=False)
    assert active(ENGINE.evaluate(first)) == [("AllowSSH", "internet", "high")]
    assert caplog.text.count("sourcePortRangeV2Preview") == 1


# --- 5 (model part). incomplete NSG objects ----------------------------------------------------------------------

@pytest.mark.parametrize(("doc", "message"), [
    ({"name": "n", "id": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/networkSecurityGroups/n"},
     "no 'properties' and no 'securityRules'"),
    ({"name": "n", "id": "/x", "properties": {"securityRules": None}}, "'securityRules' is null"),
    ({"name": "n", "id": "/x", "properties": {"provisioningState": "Succeeded"}}, "has no 'securityRules'"),
    ({"name": "n", "id": "/x", "securityRules": None}, "'securityRules' is null"),
])
def test_incomplete_nsg_is_an_input_error_not_compliant(doc, message, tmp_path, capsys):
    with pytest.raises(InputError, match=message):
        parse_nsg(doc, strict=False)  # not even data from Azure may read as compliant
    assert scan(tmp_path, doc) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("case", ["source-port", "unknown-tag"])
def test_remediate_plans_the_revert_of_22_for_source_port_and_unknown_tag_cases(tmp_path, capsys, case):
    path = tmp_path / "nsg.json"
    path.write_text(json.dumps(nsg(SOURCE_PORT_CASE if case == "source-port" else UNKNOWN_TAG_CASE)))
    assert main(["remediate", str(path), "--dry-run", "--format", "json"]) == 0
    (plan,) = json.loads(capsys.readouterr().out)["plans"]
    assert [(a["offendingRule"], a["strategy"], a["ports"]) for a in plan["actions"]] == \
        [("AllowSSH", "insert-deny", [22])]


def test_revert_never_moves_internet_traffic_to_a_later_allow_on_other_source_ports():
    """Found by the planner's property test once source ports counted: narrowing r3 (client ports 1024-65535)
    let those flows fall through to a JIT rule that already exposed ports 0-1023. Exposures compared per
    source-port range (``PublicSources.by_source_port``) make the planner see it and choose another way."""
    def jit(i: int, priority: int, dest: str, ports: str) -> dict:
        return with_source_ports(rule(f"SecurityCenter-JITRule-{i}-x", priority, "22", "*", dest=dest), ports)

    rules = [jit(0, 100, "10.0.0.4", "1024-65535"), jit(1, 101, "10.0.0.4", "1024-65535"),
             jit(2, 102, "10.0.0.4", "1024-65535"),
             with_source_ports(rule("r3", 103, "22", "Internet"), "1024-65535"), jit(4, 104, "*", "*")]
    n = parse_nsg(nsg(rules))
    plan = plan_revert(n, ENGINE.evaluate(n).findings, ENGINE.evaluator, RevertScope(port_kinds=("ssh",)),
                       reevaluate=lambda x: ENGINE.evaluate(x).findings)

    def first_match(x, client_port: int) -> str:
        """Plain walk, independent of the engine: who decides 8.8.8.8:client_port -> any VM, TCP 22."""
        for r in x.inbound_rules:
            if r.carries_tcp and 22 in r.destination_ports and client_port in r.source_ports and \
                    (r.destination_address_prefix or "*") == "*" and \
                    any(t.kind in ("all", "internet") or "8.8.8.8" in t.addresses for t in r.sources):
                return f"{r.access}:{r.name}"
        return "Deny:(default)"

    after = apply_actions(n, plan.actions)
    r3_changed = any(a.offending_rule == "r3" for a in plan.actions)
    assert first_match(n, 50000) == "Allow:r3"
    # Either r3 is left alone (and reported as skipped), or its flows are really blocked afterwards.
    assert first_match(after, 50000).startswith("Deny") if r3_changed else \
        any(s.rule_name == "r3" for s in plan.skipped)


def test_exposure_that_depends_on_the_source_port_says_so():
    deny = with_source_ports(rule("DenyLowPorts", 100, "22", "Internet", access="Deny"), "0-1023")
    (rx,) = ENGINE.evaluator.evaluate(parse_nsg(nsg([deny, rule("AllowSSH", 200, "22", "*")])), (22,))[22]
    ((ports, part),) = rx.exposed.by_source_port
    assert ports.to_tokens() == ["1024-65535"] and part.addresses == rx.exposed.addresses
    (uniform,) = ENGINE.evaluator.evaluate(parse_nsg(nsg([rule("AllowSSH", 200, "22", "*")])), (22,))[22]
    assert uniform.exposed.by_source_port == ()
