"""Fuzzing every exemption parser (tags, Policy exemptions, exemption files): hostile values give our
InputError or a finding, never another exception (issue 9 item 4: OverflowError used to crash every path)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core.errors import InputError
from shared.core.exemptions import ExemptionContext, ExemptionSettings, apply_exemptions, parse_exemption
from shared.core.model import parse_nsg
from shared.core.policy import Engine
from shared.core.policyexemptions import (
    AssignmentMatcher,
    ExemptionIndex,
    iter_exemption_documents,
    parse_policy_exemption,
)
from tests.nsgfactory import SUB, nsg, nsg_id, rule

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
ENGINE = Engine()
APPROVER = "11111111-2222-4333-8444-555555555555"
ASSIGNMENT = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/policyAssignments/nsg-guard-internet-ssh"
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20)


@st.composite
def timestamps(draw) -> str:
    """ISO 8601 text across the whole datetime range with every real-world offset (-12:00 .. +14:00)."""
    t = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
    minutes = draw(st.integers(-12 * 60, 14 * 60))
    sign, minutes = ("-" if minutes < 0 else "+"), abs(minutes)
    form = draw(st.sampled_from(["offset", "z", "naive", "date", "junk"]))
    if form == "offset":
        return f"{t.isoformat()}{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    if form == "z":
        return t.isoformat() + "Z"
    if form == "naive":
        return t.isoformat()
    if form == "date":
        return t.date().isoformat()
    return draw(st.text(max_size=25))


tag_text = st.one_of(
    st.text(max_size=120),
    st.builds(lambda r, e, extra: f"rules={r}; expires={e}; reason=x{extra}",
              st.sampled_from(["AllowSSH", "*", "a,b", ""]), timestamps(),
              st.sampled_from(["", "; ports=22", "; fingerprint=" + "a" * 16, "; ports=0", "; x=y"])))


@FUZZ
@given(tag_text)
def test_tag_parser_raises_only_input_error(value):
    with contextlib.suppress(InputError):
        parse_exemption("nsg-guard-exempt", value, 90, NOW)


@st.composite
def near_valid_exemptions(draw) -> dict:
    scope = draw(st.sampled_from([nsg_id(), f"/subscriptions/{SUB}/resourceGroups/rg1", f"/subscriptions/{SUB}"]))
    rules = draw(st.one_of(json_values, st.lists(st.fixed_dictionaries(
        {"rule": st.sampled_from(["AllowSSH", "*", ""]) | json_values,
         "fingerprint": st.sampled_from(["sha256:" + "0" * 64, "x"]) | json_values},
        optional={"nsgId": st.sampled_from([nsg_id(), nsg_id("other"), "/x"]) | json_values}), max_size=3)))
    props = draw(st.fixed_dictionaries(
        {"policyAssignmentId": st.just(ASSIGNMENT)},
        optional={"exemptionCategory": st.sampled_from(["Waiver", "mitigated", "other"]) | json_values,
                  "expiresOn": timestamps() | json_values,
                  "metadata": st.one_of(json_values, st.just({"nsgGuard": {"rules": rules}}))}))
    raw = {"id": f"{scope}/providers/Microsoft.Authorization/policyExemptions/e", "properties": props}
    if draw(st.booleans()):
        raw["systemData"] = draw(st.fixed_dictionaries({}, optional={
            "createdAt": timestamps() | json_values, "createdBy": json_values, "createdByType": json_values}))
    return raw


@FUZZ
@given(st.one_of(json_values, near_valid_exemptions()))
def test_policy_exemption_parser_raises_only_input_error(raw):
    with contextlib.suppress(InputError):
        parse_policy_exemption(raw, now=NOW, max_days=90, assignment=AssignmentMatcher())


@FUZZ
@given(json_values)
def test_exemption_documents_raise_only_input_error(data):
    with contextlib.suppress(InputError):
        list(iter_exemption_documents(data))


SSH = parse_nsg(nsg([rule("AllowSSH", 300, "22", "*")]))


@FUZZ
@given(st.dictionaries(st.sampled_from(["nsg-guard-exempt", "nsg-guard-exempt-2", "owner"]), tag_text,
                       max_size=3),
       st.lists(near_valid_exemptions(), max_size=3), st.sampled_from([APPROVER, None, "someone"]))
def test_evaluation_never_raises_for_hostile_exemptions(tags, raws, actor):
    """The path every trigger shares: hostile tags and exemptions give findings, never exceptions."""
    n = parse_nsg(nsg([rule("AllowSSH", 300, "22", "*")], tags=tags))
    index = ExemptionIndex.parse(raws, now=NOW, max_days=90, assignment=AssignmentMatcher())
    ctx = ExemptionContext(ExemptionSettings(sources=("policy", "tag"), approvers=frozenset({APPROVER})), index,
                           actor)
    ev = apply_exemptions(ENGINE.evaluate(n), now=NOW, context=ctx)
    assert any(f.rule.name == "AllowSSH" for f in ev.findings)  # nothing detected is lost


SCOPES = [f"/subscriptions/{SUB}", f"/Subscriptions/{SUB.upper()}/resourceGroups/RG1",
          f"/subscriptions/{SUB}/resourceGroups/rg2", "/subscriptions/other",
          nsg_id(), nsg_id("nsg2"), nsg_id().upper(),
          "/providers/Microsoft.Management/managementGroups/mg1"]


@FUZZ
@given(st.lists(st.sampled_from(SCOPES), max_size=12), st.sampled_from([nsg_id(), nsg_id("nsg2"), nsg_id("x", "rg2")]))
def test_index_lookup_equals_brute_force_scope_filter(scopes, target):
    from shared.core.policyexemptions import ExemptionProblem, in_scope

    index = ExemptionIndex(problems=[ExemptionProblem(f"{s}/providers/Microsoft.Authorization/policyExemptions/e{i}",
                                                      s, "m") for i, s in enumerate(scopes)])
    _, found = index.for_nsg(target)
    assert sorted(p.id for p in found) == sorted(p.id for p in index.problems if in_scope(target, p.scope))
