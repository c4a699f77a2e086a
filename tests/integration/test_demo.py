"""The README's main command: the offline demo runs end to end and shows the attributed finding."""

from __future__ import annotations

import io
import json

from localazure.demo import run_demo


def test_demo_detects_and_attributes_the_incident(tmp_path):
    out = io.StringIO()
    assert run_demo(str(tmp_path), out) == 0
    text = out.getvalue()
    assert text.count("28 NSGs via Resource Graph") == 2 and "28 compliant (100.0%)" in text
    assert "by ada.okafor@contoso.example -> on_nsg_change" in text
    assert "now has nsg-guard-deny-22-" in text and "delete nsg-guard-deny-22-" in text
    assert "AllowSSH finding now Exempt" in text and "Top actors opening port 22" in text
    assert "Demo succeeded: detected, attributed, reverted, verified, exempted and restored." in text
    rows = [json.loads(line) for line in (tmp_path / "ingested" / "Custom-NsgGuardFindings.jsonl").read_text()
            .splitlines()]
    finding = next(r for r in rows if r["RecordType"] == "finding")
    assert (finding["Severity"], finding["Actor"], finding["NsgName"]) == \
        ("high", "ada.okafor@contoso.example", "ci-gpu-03-nsg")
    # The incident's write-ahead row, then its result (the Azure ML chapter's migrate-ssh steps are remediation
    # rows of their own mode).
    planned, revert = [r for r in rows if r["RecordType"] == "remediation" and r["Mode"] != "migrate-ssh"]
    assert (planned["Result"], planned["Details"]["writeAhead"], planned["RuleAfter"]) == (
        "planned", True, revert["RuleAfter"])
    assert (revert["Mode"], revert["Result"], revert["Actor"]) == ("enforce", "verified", "ada.okafor@contoso.example")
    assert revert["RuleAfter"]["properties"]["access"] == "Deny"
    # Two sweeps of the main story, two of the Azure ML chapter.
    assert [r["Result"] for r in rows if r["RecordType"] == "sweep"] == ["completed"] * 4


def test_demo_rows_name_nsg_guards_own_identity_for_its_own_writes(tmp_path):
    from localazure.demo import GUARD

    assert run_demo(str(tmp_path), io.StringIO()) == 0
    rows = [json.loads(line) for line in (tmp_path / "ingested" / "Custom-NsgGuardFindings.jsonl").read_text()
            .splitlines()]
    actors = {r.get("Actor") for r in rows if r.get("EventId")}
    assert "developer@localazure.example" not in actors
    own = [r for r in rows if r.get("Actor") == GUARD.app_id]
    assert own and all(r["ActorType"] == "ServicePrincipal" for r in own)
    assert actors <= {GUARD.app_id, "ada.okafor@contoso.example", "secops@contoso.example"}
