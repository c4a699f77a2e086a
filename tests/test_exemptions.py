"""Exemptions are approvals: tag parsing (opt-in, approver-bound), Policy exemptions (bounded, fingerprinted),
muting without dropping, and exemptions that exempt nothing as findings of their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.core.errors import ConfigError, InputError
from shared.core.exemptions import (
    ExemptionContext,
    ExemptionSettings,
    apply_exemptions,
    lapsed_exemption,
    parse_exemption,
    parse_exemptions,
)
from shared.core.model import parse_nsg
from shared.core.policy import Engine
from shared.core.policyexemptions import (
    AssignmentMatcher,
    ExemptionIndex,
    ExemptionProblem,
    PolicyExemption,
    parse_policy_exemption,
    rule_fingerprint,
)
from tests.nsgfactory import SUB, nsg, nsg_id, rule

ENGINE = Engine()
NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
NSG_ID = nsg_id()
ASSIGNMENT = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/policyAssignments/nsg-guard-internet-ssh"
APPROVER = "11111111-2222-4333-8444-555555555555"
ENGINEER = "99999999-2222-4333-8444-555555555555"
ANY_SSH = rule("AllowSSH", 310, "22", "*")
RDP = rule("AllowRDP", 320, "3389", "*")


def parsed(rules=None, tags=None):
    return parse_nsg(nsg(rules or [ANY_SSH, RDP], tags=tags or {}))


def fp(rule_json) -> str:
    return rule_fingerprint(parse_nsg(nsg([rule_json])).rules[0])


def evaluate(tags=None, rules=None, context=None, now=NOW):
    return apply_exemptions(ENGINE.evaluate(parsed(rules, tags)), now=now, context=context)


def by_rule(ev):
    return {f.rule.name: f for f in ev.findings}


# --- tags ------------------------------------------------------------------------------------------------

def test_full_tag_format():
    e = parse_exemption("nsg-guard-exempt", " Rules=AllowSSH, AllowCI ; expires=2025-06-01; ticket=CHG-1; "
                                            "reason=vendor migration; ports=22; fingerprint=" + "a" * 16 + ",b" * 1
                        + "b" * 15)
    assert e.rules == ("allowssh", "allowci") and e.ports == (22,) and e.ticket == "CHG-1"
    assert e.reason == "vendor migration" and e.fingerprints == ("a" * 16, "b" * 16)
    assert not e.expired(NOW) and e.expired(datetime(2025, 6, 2, tzinfo=UTC))  # valid through that day


def test_timestamp_expiry_needs_a_time_zone():
    assert parse_exemption("t", "rules=a; expires=2025-06-01T10:00:00Z; reason=x").expired(NOW)
    with pytest.raises(InputError, match="time zone"):
        parse_exemption("t", "rules=a; expires=2025-06-01T10:00:00; reason=x")


@pytest.mark.parametrize("expiry", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
def test_extreme_expiry_offsets_are_input_errors_not_overflow(expiry):
    with pytest.raises(InputError, match="invalid expires"):
        parse_exemption("nsg-guard-exempt", f"rules=AllowSSH; expires={expiry}; reason=x")
    # ... and on the evaluation path they are a finding (tags on) or a note (tags off), never an exception.
    ev = evaluate({"nsg-guard-exempt": f"rules=AllowSSH; expires={expiry}; reason=x"},
                  context=ExemptionContext(ExemptionSettings(sources=("policy", "tag"),
                                                             approvers=frozenset({APPROVER}))))
    assert [f.port_kind for f in ev.findings if f.port_kind == "exemption-tag"] == ["exemption-tag"]


@pytest.mark.parametrize(("value", "message"), [
    ("expires=2025-01-01; reason=x", "missing 'rules='"),
    ("rules=a; reason=x", "missing 'expires='"),
    ("rules=a; expires=2025-01-01", "ticket=' or 'reason="),
    ("rules=a; expires=someday; reason=x", "invalid expires"),
    ("rules=a; expires=2025-13-01; reason=x", "invalid expires"),
    ("rules=a; expires=2025-01-01; reason=x; owner=me", "unknown key 'owner'"),
    ("rules=a; rules=b; expires=2025-01-01; reason=x", "given twice"),
    ("rules=*; expires=2025-01-01; reason=x", "not an approval"),
    ("rules=a,*; expires=2025-01-01; reason=x", "not an approval"),
    ("rules=a; expires=2025-01-01; reason=x; ports=ssh", "invalid port"),
    ("rules=a,b; expires=2025-01-01; reason=x; fingerprint=" + "a" * 16, "one sha256 hex prefix"),
    ("rules=a; expires=2025-01-01; reason=x; fingerprint=abc", "one sha256 hex prefix"),
    ("rules=a; forever", "not key=value"),
])
def test_malformed_tag_values(value, message):
    with pytest.raises(InputError, match=message):
        parse_exemption("nsg-guard-exempt", value)


def test_tag_expiry_cap_is_measured_from_now():
    ok = f"rules=a; expires={(NOW + timedelta(days=90)).isoformat()}; reason=x"
    too_long = f"rules=a; expires={(NOW + timedelta(days=90, seconds=1)).isoformat()}; reason=x"
    assert parse_exemption("t", ok, 90, NOW)
    with pytest.raises(InputError, match="more than 90 days"):
        parse_exemption("t", too_long, 90, NOW)


def test_several_tags_and_unrelated_tags():
    exemptions, problems = parse_exemptions({"nsg-guard-exempt": "rules=a; expires=2030-01-01; reason=x",
                                             "NSG-Guard-Exempt-2": "rules=b; expires=2030-01-01; ticket=T",
                                             "nsg-guard-exemptions": "ignored", "owner": "me"})
    assert [e.rules for e in exemptions] == [("b",), ("a",)] and problems == []


SELF_EXEMPTION = {"nsg-guard-exempt": "rules=*; expires=9999-12-31; reason=debug"}


def test_self_exemption_tag_leaves_the_finding_open_by_default():
    ev = evaluate(SELF_EXEMPTION)
    assert {f.status for f in ev.findings} == {"Open"} and not ev.compliant
    # Reported, not honoured: the tag is a finding of its own saying why it does not apply.
    (tag,) = [f for f in ev.findings if f.port_kind == "exemption-tag"]
    assert "not an approval" in tag.reason and "Tag exemptions are off" in tag.reason


def test_well_formed_tag_with_tags_off_is_reported_on_the_finding():
    f = by_rule(evaluate({"nsg-guard-exempt": "rules=AllowSSH; expires=2025-07-01; reason=x"}))["AllowSSH"]
    assert f.status == "Open" and f.details["exemptionNotApplied"][0]["code"] == "tags-off"


def tag_context(actor):
    return ExemptionContext(ExemptionSettings(sources=("policy", "tag"), approvers=frozenset({APPROVER})),
                            actor_object_id=actor)


def tag_for(rule_json, expires="2025-07-01"):
    return {"nsg-guard-exempt": f"rules={rule_json['name']}; fingerprint={fp(rule_json)[7:23]}; "
                                f"expires={expires}; ticket=CHG-9"}


def test_tag_exemption_honoured_only_for_an_approver_actor():
    ev = evaluate(tag_for(ANY_SSH), context=tag_context(APPROVER))
    f = by_rule(ev)["AllowSSH"]
    assert f.status == "Exempt" and f.details["exemption"]["approver"] == APPROVER
    assert by_rule(ev)["AllowRDP"].status == "Open"


@pytest.mark.parametrize("actor", [ENGINEER, None], ids=["engineer", "no-event-actor"])
def test_tag_exemption_by_someone_else_is_reported_not_honoured(actor):
    f = by_rule(evaluate(tag_for(ANY_SSH), context=tag_context(actor)))["AllowSSH"]
    assert f.status == "Open" and f.details["exemptionNotApplied"][0]["code"] == "not-approver"
    assert "not by an approver" in f.reason and not lapsed_exemption(f)  # never approved: nothing lapsed


def test_tag_exemption_without_fingerprint_or_with_a_changed_rule_does_not_apply():
    no_fp = {"nsg-guard-exempt": "rules=AllowSSH; expires=2025-07-01; ticket=CHG-9"}
    assert by_rule(evaluate(no_fp, context=tag_context(APPROVER)))["AllowSSH"].status == "Open"
    narrow = rule("AllowSSH", 310, "22", "198.51.100.0/24")
    ev = evaluate(tag_for(narrow), rules=[ANY_SSH], context=tag_context(APPROVER))
    assert by_rule(ev)["AllowSSH"].details["exemptionNotApplied"][0]["code"] == "rule-changed"


def test_too_long_tag_is_a_finding_of_its_own_when_tags_are_on():
    ev = evaluate(tag_for(ANY_SSH, "2025-12-31"), context=tag_context(APPROVER))
    (tag,) = [f for f in ev.findings if f.port_kind == "exemption-tag"]
    assert tag.counts_against_compliance and "more than 90 days" in tag.reason
    assert by_rule(ev)["AllowSSH"].status == "Open"


def test_latent_findings_keep_their_status():
    ev = evaluate(tag_for(ANY_SSH), [rule("Deny", 200, "22", "*", access="Deny"), ANY_SSH],
                  context=tag_context(APPROVER))
    assert [f.status for f in ev.findings] == ["Latent"]


def test_no_exemptions_returns_the_evaluation_unchanged():
    ev = ENGINE.evaluate(parsed([ANY_SSH]))
    assert apply_exemptions(ev) is ev


# --- fingerprints ------------------------------------------------------------------------------------------

def _with(**props):
    r = rule("R", 300, "22", "203.0.113.7/32")
    r["properties"].update(props)
    return r


@pytest.mark.parametrize("change", [
    {"protocol": "*"}, {"access": "Deny"}, {"direction": "Outbound"},
    {"sourcePortRange": "1024-65535"}, {"destinationPortRange": "22-23"},
    {"sourceAddressPrefix": "*"}, {"sourceAddressPrefix": "203.0.113.0/24"},
    {"destinationAddressPrefix": "10.0.0.4"},
], ids=lambda c: next(iter(c)))
def test_fingerprint_changes_with_every_content_field(change):
    assert fp(_with(**change)) != fp(_with())


def test_fingerprint_ignores_name_priority_description_case_and_order():
    a = rule("A", 300, ["22", "2222"], ["203.0.113.7/32", "198.51.100.1"])
    b = rule("B", 4000, ["2222", "22"], ["198.51.100.1", "203.0.113.7/32"], protocol="tcp")
    b["properties"]["description"] = "renamed and moved"
    assert fp(a) == fp(b)


# --- policy exemptions ---------------------------------------------------------------------------------

def exemption(scope=NSG_ID, name="ex1", rules=None, expires="2025-07-01T00:00:00Z", created="2025-05-31T00:00:00Z",
              category="Waiver", assignment=ASSIGNMENT, **meta):
    entries = rules if rules is not None else [{"nsgId": NSG_ID, "rule": "AllowSSH", "fingerprint": fp(ANY_SSH)}]
    props = {"policyAssignmentId": assignment, "exemptionCategory": category, "expiresOn": expires,
             "metadata": {"nsgGuard": {"version": 1, "ticket": "CHG-1", "reason": "vendor", "rules": entries,
                                       **meta}}}
    if expires is None:
        del props["expiresOn"]
    raw = {"id": f"{scope}/providers/Microsoft.Authorization/policyExemptions/{name}", "name": name,
           "type": "Microsoft.Authorization/policyExemptions", "properties": props}
    if created:
        raw["systemData"] = {"createdBy": "secops@contoso.example", "createdByType": "User", "createdAt": created}
    return raw


def policy_context(*raws, now=NOW, max_days=90):
    index = ExemptionIndex.parse(raws, now=now, max_days=max_days, assignment=AssignmentMatcher())
    return ExemptionContext(ExemptionSettings(max_days=max_days), index)


def test_valid_policy_exemption_makes_the_finding_exempt_with_id_approver_and_expiry():
    ev = evaluate(context=policy_context(exemption()))
    f = by_rule(ev)["AllowSSH"]
    assert f.status == "Exempt" and not f.counts_against_compliance
    assert (f.details["exemption"]["id"].endswith("/policyExemptions/ex1"), f.details["exemption"]["approver"],
            f.details["exemption"]["expiresOn"]) == (True, "secops@contoso.example", "2025-07-01T00:00:00Z")
    assert by_rule(ev)["AllowRDP"].status == "Open"


def test_widening_the_rule_after_approval_reopens_it():
    approved = rule("AllowSSH", 310, "22", "52.1.2.3/32")  # a vendor's address: severity low, Open
    context = policy_context(exemption(rules=[{"nsgId": NSG_ID, "rule": "AllowSSH", "fingerprint": fp(approved)}]))
    assert by_rule(evaluate(rules=[approved], context=context))["AllowSSH"].status == "Exempt"
    f = by_rule(evaluate(rules=[ANY_SSH], context=context))["AllowSSH"]
    assert f.status == "Open" and f.details["exemptionNotApplied"][0]["code"] == "rule-changed"
    assert "content fingerprint differs" in f.reason and lapsed_exemption(f)


def test_source_port_change_reopens_it_too():
    context = policy_context(exemption())
    widened = rule("AllowSSH", 310, "22", "*")
    widened["properties"]["sourcePortRange"] = "1-65535"
    assert by_rule(evaluate(rules=[widened], context=context))["AllowSSH"].status == "Open"


def test_expired_policy_exemption_leaves_it_open_and_says_so():
    f = by_rule(evaluate(context=policy_context(exemption()), now=datetime(2025, 7, 1, tzinfo=UTC)))["AllowSSH"]
    assert f.status == "Open" and f.details["exemptionNotApplied"][0]["code"] == "expired" and lapsed_exemption(f)


@pytest.mark.parametrize(("raw", "message"), [
    (exemption(expires="2025-08-30T00:00:01Z"), "more than 90 days after its creation"),
    (exemption(expires=None), "expiresOn is missing"),
    (exemption(expires="9999-12-31T23:59:59-12:00"), "not a usable date-time"),
    (exemption(expires="0001-01-01T00:00:00+14:00"), "not a usable date-time"),
    (exemption(category="Whatever"), "Waiver or Mitigated"),
    (exemption(rules=[]), "non-empty list"),
    (exemption(rules=[{"nsgId": NSG_ID, "rule": "*", "fingerprint": fp(ANY_SSH)}]), "wildcards"),
    (exemption(rules=[{"nsgId": NSG_ID, "rule": "AllowSSH", "fingerprint": "md5:00"}]), "sha256"),
    (exemption(scope=f"/subscriptions/{SUB}/resourceGroups/rg1",
               rules=[{"rule": "AllowSSH", "fingerprint": fp(ANY_SSH)}]), "nsgId is required"),
], ids=["too-long", "no-expiry", "overflow-high", "overflow-low", "category", "no-rules", "wildcard", "bad-fp",
        "no-nsg-above"])
def test_bad_policy_exemption_exempts_nothing_and_is_a_finding(raw, message):
    ev = evaluate(context=policy_context(raw))
    assert by_rule(ev)["AllowSSH"].status == "Open"
    (problem,) = [f for f in ev.findings if f.port_kind == "exemption"]
    assert message in problem.reason and problem.counts_against_compliance and problem.severity == "low"
    assert problem.details["exemptionError"]["id"] == raw["id"]


def test_expiry_cap_boundary_is_inclusive_and_configurable():
    assert isinstance(parse_policy_exemption(exemption(expires="2025-08-29T00:00:00Z"), now=NOW),
                      PolicyExemption)
    assert isinstance(parse_policy_exemption(exemption(), now=NOW, max_days=31), PolicyExemption)
    assert isinstance(parse_policy_exemption(exemption(expires="2025-07-01T00:00:01Z"), now=NOW, max_days=31),
                      ExemptionProblem)


def test_without_system_data_the_cap_is_measured_from_now():
    assert isinstance(parse_policy_exemption(exemption(created=None, expires="2025-08-30T11:00:00Z"), now=NOW),
                      PolicyExemption)
    assert isinstance(parse_policy_exemption(exemption(created=None, expires="2025-08-30T13:00:00Z"), now=NOW),
                      ExemptionProblem)


def test_exemptions_of_other_assignments_are_not_ours():
    other = exemption(assignment=f"/subscriptions/{SUB}/providers/Microsoft.Authorization/policyAssignments/x")
    assert parse_policy_exemption(other, now=NOW) is None
    pinned = AssignmentMatcher(ASSIGNMENT.replace("nsg-guard-internet-ssh", "x"))
    assert isinstance(parse_policy_exemption(other, now=NOW, assignment=pinned), PolicyExemption)
    assert parse_policy_exemption(exemption(), now=NOW, assignment=pinned) is None


def test_exemption_above_the_nsg_applies_through_nsg_id():
    rg = f"/subscriptions/{SUB}/resourceGroups/rg1"
    ev = evaluate(context=policy_context(exemption(scope=rg)))
    assert by_rule(ev)["AllowSSH"].status == "Exempt"
    other_nsg = exemption(scope=rg, rules=[{"nsgId": nsg_id("other"), "rule": "AllowSSH",
                                            "fingerprint": fp(ANY_SSH)}])
    assert by_rule(evaluate(context=policy_context(other_nsg)))["AllowSSH"].status == "Open"


def test_exemption_on_another_nsg_does_not_apply():
    raw = exemption(scope=nsg_id("other"), rules=[{"rule": "AllowSSH", "fingerprint": fp(ANY_SSH)}])
    ev = evaluate(context=policy_context(raw))
    assert {f.status for f in ev.findings} == {"Open"} and not ev.findings[0].details


@pytest.mark.parametrize("raw", [None, [], "x", {"id": 3}, {"id": "/subscriptions/x"},
                                 {"id": f"{NSG_ID}/providers/Microsoft.Authorization/policyExemptions/e"},
                                 {"id": f"{NSG_ID}/providers/Microsoft.Authorization/policyExemptions/e",
                                  "properties": {"policyAssignmentId": 1}}])
def test_items_that_are_not_exemptions_are_input_errors(raw):
    with pytest.raises(InputError):
        parse_policy_exemption(raw, now=NOW)
    assert ExemptionIndex.parse([raw], now=NOW, max_days=90, assignment=AssignmentMatcher()).rejected


def test_unreadable_exemptions_leave_findings_open_with_a_note():
    ctx = ExemptionContext(ExemptionSettings(), ExemptionIndex.unavailable("HTTP 403 AuthorizationFailed"))
    ev = evaluate(context=ctx)
    assert {f.status for f in ev.findings} == {"Open"}
    assert all("403" in f.details["exemptionsUnavailable"] for f in ev.findings)


# --- settings ------------------------------------------------------------------------------------------

def test_settings_defaults_and_validation():
    s = ExemptionSettings.from_env({})
    assert (s.sources, s.max_days, s.approvers, s.tags) == (("policy",), 90, frozenset(), False)
    s = ExemptionSettings.from_env({"EXEMPTION_SOURCES": "policy,tag", "EXEMPTION_APPROVERS": APPROVER.upper(),
                                    "MAX_EXEMPTION_DAYS": "30"})
    assert s.tags and s.approvers == {APPROVER} and s.max_days == 30
    for env, message in [({"EXEMPTION_SOURCES": "policy,email"}, "'email'"),
                         ({"EXEMPTION_SOURCES": "tag"}, "EXEMPTION_APPROVERS is empty"),
                         ({"EXEMPTION_APPROVERS": "alice"}, "GUID"),
                         ({"MAX_EXEMPTION_DAYS": "9999"}, "MAX_EXEMPTION_DAYS"),
                         ({"EXEMPTION_ASSIGNMENT_ID": "/subscriptions/x"}, "EXEMPTION_ASSIGNMENT_ID")]:
        with pytest.raises(ConfigError, match=message):
            ExemptionSettings.from_env(env)
