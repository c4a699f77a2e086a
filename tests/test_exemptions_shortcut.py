"""``apply_exemptions`` returns at once when nothing is known for any scope and no tag starts with the tag name:
the shortcut gives what the full path gives (hypothesis).

The full path is forced with a context that knows one policy exemption for another subscription (so the
index is not empty, yet nothing applies to this NSG): both contexts must give the same findings, for any
tags, any tag name and with tag exemptions on or off.
"""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.core.exemptions import ExemptionContext, ExemptionSettings, apply_exemptions
from shared.core.model import parse_nsg
from shared.core.policy import Engine
from shared.core.policyexemptions import AssignmentMatcher, ExemptionIndex
from tests.nsgfactory import nsg, rule
from tests.test_exemptions import exemption

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
APPROVER = "11111111-2222-4333-8444-555555555555"
ENGINE = Engine()
OTHER_SCOPE = ("/subscriptions/99999999-0000-4000-8000-000000000000/resourceGroups/elsewhere/providers/"
               "Microsoft.Network/networkSecurityGroups/other")

TAG_NAMES = ["nsg-guard-exempt", "NSG-Guard-Exempt", "approvals"]
KEYS = ["nsg-guard-exempt", "NSG-GUARD-EXEMPT", "nsg-guard-exempt-2", "Nsg-Guard-Exempt-vendor", "nsg-guard-exemptions",
        "nsg-guard-exem", "x-nsg-guard-exempt", "owner", "approvals", "APPROVALS-1", "approvalsx", "İnsg"]
VALUES = ["rules=AllowSSH; expires=2025-07-01; reason=x", "rules=*; expires=9999-12-31; reason=debug",
          "rules=AllowRDP; expires=2025-06-10; ticket=T; ports=3389", "garbage", "", "rules=AllowSSH"]


def _contexts(tag_name: str, tags_on: bool) -> tuple[ExemptionContext, ExemptionContext]:
    settings = ExemptionSettings(sources=("policy", "tag") if tags_on else ("policy",),
                                 approvers=frozenset({APPROVER}) if tags_on else frozenset(), tag_name=tag_name)
    unrelated = ExemptionIndex.parse([exemption(scope=OTHER_SCOPE, rules=[{"nsgId": OTHER_SCOPE, "rule": "AllowSSH",
                                                                             "fingerprint": "sha256:" + "0" * 64}])],
                                     now=NOW, max_days=90, assignment=AssignmentMatcher())
    assert unrelated.exemptions  # the full path really runs with this one
    actor = APPROVER if tags_on else None
    return (ExemptionContext(settings, ExemptionIndex(), actor), ExemptionContext(settings, unrelated, actor))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tags=st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=20)),
                            st.one_of(st.sampled_from(VALUES), st.text(max_size=30)), max_size=4),
       tag_name=st.sampled_from(TAG_NAMES), tags_on=st.booleans())
def test_exemption_shortcut_equals_the_full_path(tags, tag_name, tags_on):
    evaluation = ENGINE.evaluate(parse_nsg(nsg([rule("AllowSSH", 310, "22", "*"), rule("AllowRDP", 320, "3389", "*")],
                                               tags=tags)))
    quiet, full = _contexts(tag_name, tags_on)
    fast = apply_exemptions(evaluation, now=NOW, context=quiet)
    slow = apply_exemptions(evaluation, now=NOW, context=full)
    assert fast.findings == slow.findings
    assert [f.reason for f in fast.findings] == [f.reason for f in slow.findings]
    if not any(k.lower().startswith(tag_name.lower()) for k in tags):
        assert fast is evaluation  # the shortcut was taken
