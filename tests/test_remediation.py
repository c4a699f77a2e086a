"""The revert planner on hand-picked NSGs: strategies, names, guards and the exact ARM bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from localazure.validation import validate_rule
from shared.cli import main
from shared.core.addresses import public_space
from shared.core.model import parse_nsg
from shared.core.policy import Engine, Policy, watched_ports
from shared.core.remediation import (
    INSERT_DENY,
    KNOWN_STRATEGIES,
    NARROW_PORTS,
    NARROW_SOURCES,
    OP_DELETE,
    OP_PUT,
    SHIFT,
    SKIP_JIT,
    SKIP_NO_SAFE_CHANGE,
    RevertScope,
    apply_actions,
    deny_rule_name,
    plan_revert,
)
from tests.nsgfactory import nsg, rule

ENGINE = Engine()


def plan_for(rules, engine=ENGINE, kinds=("ssh",), tags=None, **kw):
    n = parse_nsg(nsg(rules, tags=tags))
    evaluation = engine.evaluate(n)
    return n, plan_revert(n, evaluation.findings, engine.evaluator, RevertScope(port_kinds=kinds),
                          reevaluate=lambda x: engine.evaluate(x).findings, **kw)


OPT_IN = {"strategies": KNOWN_STRATEGIES}  # narrowing and shifting change the user's rule: opt-in


def after(n, plan, engine=ENGINE):
    return engine.evaluate(apply_actions(n, plan.actions))


def test_insert_deny_just_before_the_offending_rule_with_exact_body():
    n, plan = plan_for([rule("AllowBastion", 200, "22", "10.0.250.0/26"), rule("AllowSSH", 300, "22", "*"),
                        rule("AllowWeb", 310, "443", "*")])
    (a,) = plan.actions
    assert (a.op, a.strategy, a.replaces, a.offending_rule) == (OP_PUT, INSERT_DENY, None, "AllowSSH")
    assert a.rule == {"name": deny_rule_name(n.rules[1].id, (22,)), "properties": {
        "description": f"NSG Guard finding {plan.targets[0].finding_id}: denies internet TCP 22 allowed by AllowSSH",
        "protocol": "Tcp",
        "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "Internet",
        "destinationAddressPrefix": "*", "access": "Deny", "priority": 299, "direction": "Inbound"}}
    validate_rule("x", a.name, a.rule["properties"])
    res = after(n, plan)
    assert res.compliant and [(f.rule.name, f.status) for f in res.findings] == [("AllowSSH", "Latent")]


def test_deny_copies_destination_and_source_ports_so_it_never_matches_more_than_the_rule():
    r = rule("AllowSSH", 300, "22", "*")
    r["properties"].update(destinationAddressPrefix="10.0.0.4", sourcePortRange="1024-65535")
    _, plan = plan_for([r])
    props = plan.actions[0].rule["properties"]
    assert (props["destinationAddressPrefix"], props["sourcePortRange"]) == ("10.0.0.4", "1024-65535")


def test_cidr_sources_are_denied_exactly_not_with_internet():
    # 0.0.0.0/1 holds more than half the public IPv4 space; IPv6 and 128/1 must stay untouched.
    _, plan = plan_for([rule("AllowHalf", 300, "22", "0.0.0.0/1")])
    props = plan.actions[0].rule["properties"]
    assert "sourceAddressPrefix" not in props and "10.0.0.0/8" not in props["sourceAddressPrefixes"]
    assert all(not p.startswith("128.") and ":" not in p for p in props["sourceAddressPrefixes"])


def test_extra_private_ranges_make_the_deny_name_the_public_space_exactly():
    office = "20.50.0.0/16"  # treated as trusted by the organisation (EXTRA_PRIVATE_RANGES)
    engine = Engine(Policy(public=public_space([office])))
    _, plan = plan_for([rule("AllowSSH", 300, "22", "*")], engine)
    sources = plan.actions[0].rule["properties"]["sourceAddressPrefixes"]
    assert "Internet" not in sources and office not in sources and "1.0.0.0/8" in sources


def test_names_are_deterministic_short_and_valid():
    rid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n/securityRules/R"
    assert deny_rule_name(rid, (22,)) == deny_rule_name(rid.upper(), [22])
    assert deny_rule_name(rid, (22,)) != deny_rule_name(rid + "2", (22,))
    long = deny_rule_name(rid, tuple(range(10000, 10020)))
    assert len(long) <= 80 and long.startswith("nsg-guard-deny-multi-")
    validate_rule("x", long, {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22",
                              "sourceAddressPrefix": "*", "destinationAddressPrefix": "*", "access": "Deny",
                              "priority": 100, "direction": "Inbound"})


def test_existing_deny_of_ours_is_replaced_not_duplicated():
    n, plan = plan_for([rule("AllowSSH", 300, "22", "0.0.0.0/1")])
    deny = plan.actions[0].rule
    # Someone widens the rule afterwards: the same deny name is re-planned (PUT replaces), at the same place.
    rules = [rule("AllowSSH", 300, "22", "*"), {**deny, "id": f"{n.id}/securityRules/{deny['name']}"}]
    _, plan2 = plan_for(rules)
    (a,) = plan2.actions
    assert a.name == deny["name"] and a.replaces is not None and a.rule["properties"]["priority"] == 299
    assert a.rule["properties"]["sourceAddressPrefix"] == "Internet"


def test_rule_of_the_same_name_that_is_not_ours_is_never_overwritten():
    n = parse_nsg(nsg([rule("AllowSSH", 300, "22", "*")]))
    name = deny_rule_name(n.rules[0].id, (22,))
    _, plan = plan_for([rule("AllowSSH", 300, "22", "*"), rule(name, 100, "80", "*")])
    assert plan.actions == () or all(a.name != name for a in plan.actions)
    assert plan.skipped and plan.skipped[0].code == SKIP_NO_SAFE_CHANGE


@pytest.mark.parametrize(("rules", "strategy", "op"), [
    ([rule("AllowWebSSH", 100, ["22", "443"], "Internet")], NARROW_PORTS, OP_PUT),
    ([rule("AllowSSH", 100, "22", "Internet")], NARROW_PORTS, OP_DELETE),
    ([rule("AllowSSH", 100, "22", ["0.0.0.0/0", "::/0"])], NARROW_SOURCES, OP_PUT),
    ([rule("AllowSSH", 100, "22", ["52.0.0.0/1", "2a01::/16"])], NARROW_SOURCES, OP_PUT),
    ([rule("AllowAll", 100, "22", "*")], SHIFT, OP_PUT),
])
def test_no_room_before_the_rule(rules, strategy, op):
    n, plan = plan_for(rules, **OPT_IN)
    assert plan.actions[0].strategy == strategy and plan.actions[0].op == op
    assert after(n, plan).compliant


def test_narrowing_is_rejected_when_traffic_would_fall_through_to_a_later_allow():
    # Removing 22 from AllowWebSSH would hand the internet to AllowSSH2 (shadowed until now).
    _, plan = plan_for([rule("AllowWebSSH", 100, ["22", "443"], "Internet"), rule("AllowSSH2", 101, "22", "*"),
                        rule("Deny", 102, "80", "*", access="Deny")], **OPT_IN)
    assert plan.actions == () and plan.skipped[0].code == SKIP_NO_SAFE_CHANGE
    assert "fall through to allowssh2" in plan.skipped[0].reason


def test_star_sources_are_never_narrowed_to_private_cidrs():
    # '*' also covers service-tag and ASG sources that no CIDR list names: only shift or skip.
    _, plan = plan_for([rule("AllowSSH", 100, "22", "*"), rule("X", 101, "80", "*")], **OPT_IN)
    assert plan.actions == () and "cannot be narrowed" in plan.skipped[0].reason


def test_udp_and_other_ports_of_the_rule_are_left_alone():
    n, plan = plan_for([rule("AllowAll", 300, "*", "*", protocol="*")])
    (a,) = plan.actions
    assert a.rule["properties"]["protocol"] == "Tcp" and a.rule["properties"]["destinationPortRange"] == "22"
    findings = {(f.port, f.status) for f in after(n, plan).findings}
    assert (3389, "Open") in findings and (22, "Latent") in findings  # management not in scope by default


def test_only_configured_port_kinds_and_internet_exposure_are_targets():
    _, plan = plan_for([rule("AllowRDP", 300, "3389", "*"), rule("AllowSSHBroad", 310, "22", "52.0.0.0/8")])
    assert plan.actions == () and plan.skipped == ()
    _, plan = plan_for([rule("AllowRDP", 300, "3389", "*")], kinds=("management",))
    assert plan.actions[0].ports == (3389,)


def test_jit_rules_are_skipped_when_the_jit_service_wrote_them():
    _, plan = plan_for([rule("SecurityCenter-JITRule-1-abc", 300, "22", "*")],
                       protected=("securitycenter-jitrule-1-abc",))
    assert plan.actions == () and plan.skipped[0].code == SKIP_JIT


def test_rule_named_like_jit_but_open_to_the_internet_is_reverted():
    # The name alone is no JIT proof: JIT opens one requested IP, never the internet.
    _, plan = plan_for([rule("SecurityCenter-JITRule-1-abc", 300, "22", "*")])
    (a,) = plan.actions
    assert a.offending_rule == "SecurityCenter-JITRule-1-abc" and a.strategy == INSERT_DENY


def test_default_plans_only_add_our_denies_never_touch_user_rules():
    # No room in front (100): the default strategy skips instead of narrowing, deleting or shifting.
    for rules in ([rule("AllowWebSSH", 100, ["22", "443"], "Internet")], [rule("AllowSSH", 100, "22", "Internet")],
                  [rule("AllowAll", 100, "22", "*")]):
        _, plan = plan_for(rules)
        assert plan.actions == () and plan.skipped[0].code == SKIP_NO_SAFE_CHANGE
        assert "opt-in" in plan.skipped[0].reason


def test_exempt_findings_are_not_targets():
    from shared.core.exemptions import ExemptionContext, apply_exemptions
    from shared.core.policyexemptions import ApprovedRule, ExemptionIndex, PolicyExemption, rule_fingerprint

    n = parse_nsg(nsg([rule("AllowSSH", 300, "22", "*")]))
    approval = PolicyExemption(f"{n.id}/providers/Microsoft.Authorization/policyExemptions/e", "e", n.id, "a",
                               "Waiver", datetime(2999, 1, 1, tzinfo=UTC), None, "secops", "User",
                               (ApprovedRule(None, "AllowSSH", rule_fingerprint(n.rules[0])),))
    evaluation = apply_exemptions(ENGINE.evaluate(n), context=ExemptionContext(index=ExemptionIndex([approval])))
    assert [f.status for f in evaluation.findings] == ["Exempt"]
    assert plan_revert(n, evaluation.findings, ENGINE.evaluator).targets == ()


def test_split_ranges_are_planned_together():
    quarters = [rule(f"Q{i}", 300 + 10 * i, "22", f"{64 * i}.0.0.0/2") for i in range(4)]
    n, plan = plan_for(quarters)
    assert sorted(a.offending_rule for a in plan.actions) == ["Q0", "Q1", "Q2", "Q3"]
    assert after(n, plan).compliant


def test_remediate_cli_prints_the_plan_as_json(tmp_path, capsys):
    path = tmp_path / "nsg.json"
    path.write_text(json.dumps([nsg([rule("AllowSSH", 300, "22", "*")]), nsg([], name="empty")]))
    assert main(["remediate", str(path), "--dry-run", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (p,) = out["plans"]
    (a,) = p["actions"]
    assert set(a) >= {"op", "rule", "replaces", "reason"} and a["op"] == "put" and a["replaces"] is None
    assert a["rule"]["properties"]["access"] == "Deny" and a["rule"]["name"].startswith("nsg-guard-deny-22-")
    assert main(["remediate", str(path), "--dry-run"]) == 0
    assert "nsg-guard-deny-22-" in capsys.readouterr().out


def test_remediate_cli_bad_input_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text("{")
    assert main(["remediate", str(path), "--dry-run"]) == 2
    assert main(["remediate", str(path), "--dry-run", "--revert-kinds", "nope"]) == 2


def test_watched_custom_ssh_port_kind():
    engine = Engine(Policy(watched=watched_ports((2222,), ())))
    _, plan = plan_for([rule("AllowCustom", 300, "2222", "*")], engine, kinds=("ssh-custom",))
    assert plan.actions[0].name.startswith("nsg-guard-deny-2222-")


def test_deny_names_carry_64_bits_of_hash():
    rid = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n/securityRules/R"
    name = deny_rule_name(rid, (22,))
    assert len(name.rsplit("-", 1)[1]) == 16 and len(name) <= 80
    names = {deny_rule_name(f"{rid}{i}", (22,)) for i in range(50000)}  # 32 bits collided after ~35k names
    assert len(names) == 50000


def test_planner_is_bounded_on_a_thousand_rule_nsg():
    import time

    from bench.planner import split_range_nsg

    n = parse_nsg(split_range_nsg(1000))
    start = time.perf_counter()
    evaluation = ENGINE.evaluate(n)
    plan = plan_revert(n, evaluation.findings, ENGINE.evaluator, RevertScope(),
                       reevaluate=lambda x: ENGINE.evaluate(x).findings, max_changes=10)
    assert time.perf_counter() - start < 8  # bench/planner.py: ~0.4 s alone; was ~13 min
    (a,) = plan.actions
    assert a.strategy == "broad-deny" and after(n, plan).compliant


def test_user_rules_named_like_ours_are_never_deleted_or_changed():
    # An Allow the user named nsg-guard-*, and a user Deny in our namespace without our description marker.
    rules = [rule("nsg-guard-allow-ssh", 100, "22", "Internet"), rule("nsg-guard-deny-mine", 200, "80", "*",
                                                                      access="Deny")]
    _, plan = plan_for(rules)  # the default strategy; opt-in narrowing may change any offending rule
    assert all(a.name not in ("nsg-guard-allow-ssh", "nsg-guard-deny-mine") for a in plan.actions)
    assert plan.skipped and plan.skipped[0].rule_name == "nsg-guard-allow-ssh"


def test_own_deny_is_removed_once_its_rule_is_fixed_and_kept_while_needed():
    n, plan = plan_for([rule("AllowSSH", 300, "22", "*")])
    deny = {**plan.actions[0].rule, "id": f"{n.id}/securityRules/{plan.actions[0].name}"}
    _, again = plan_for([rule("AllowSSH", 300, "22", "*"), deny])
    assert again.actions == ()  # still needed: kept
    _, fixed = plan_for([rule("AllowSSH", 300, "22", "203.0.113.7"), deny])  # owner narrowed to the office IP
    (a,) = fixed.actions
    assert (a.op, a.name, a.strategy) == (OP_DELETE, deny["name"], "remove-stale-deny")
