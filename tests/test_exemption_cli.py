"""Hostile exemption values on the CLI paths (issue 9 item 4): a finding or exit 2, never a traceback."""

from __future__ import annotations

import json

import pytest

from shared.cli import main
from tests.nsgfactory import nsg, rule

OVERFLOWS = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"]


def write(tmp_path, expiry):
    path = tmp_path / "nsg.json"
    path.write_text(json.dumps(nsg([rule("AllowSSH", 300, "22", "*")],
                                   tags={"nsg-guard-exempt": f"rules=AllowSSH; expires={expiry}; reason=x"})))
    return str(path)


@pytest.mark.parametrize("expiry", OVERFLOWS)
def test_scan_with_overflowing_tag_expiry_reports_instead_of_crashing(tmp_path, capsys, expiry):
    assert main(["scan", write(tmp_path, expiry), "--format", "json"]) == 1
    out = capsys.readouterr()
    findings = json.loads(out.out)["findings"]
    assert {f["status"] for f in findings if f["ruleName"] == "AllowSSH"} == {"Open"}
    assert any(f["portKind"] == "exemption-tag" and "invalid expires" in f["reason"] for f in findings)
    assert "Traceback" not in out.err


@pytest.mark.parametrize("expiry", OVERFLOWS)
def test_remediate_with_overflowing_tag_expiry_plans_instead_of_crashing(tmp_path, capsys, expiry):
    code = main(["remediate", write(tmp_path, expiry), "--dry-run", "--format", "json"])
    out = capsys.readouterr()
    assert code in (0, 1) and "Traceback" not in out.err
    assert "AllowSSH" in out.out  # the open port is planned for revert: the tag exempts nothing


@pytest.mark.parametrize("expiry", OVERFLOWS)
def test_scan_with_overflowing_policy_expiry_in_the_exemptions_file(tmp_path, capsys, expiry):
    nsg_path = tmp_path / "n.json"
    doc = nsg([rule("AllowSSH", 300, "22", "*")])
    nsg_path.write_text(json.dumps(doc))
    sub = doc["id"].split("/")[2]
    (tmp_path / "ex.json").write_text(json.dumps({"value": [{
        "id": doc["id"] + "/providers/Microsoft.Authorization/policyExemptions/e",
        "properties": {"policyAssignmentId": f"/subscriptions/{sub}/providers/Microsoft.Authorization/"
                                             "policyAssignments/nsg-guard-internet-ssh",
                       "exemptionCategory": "Waiver", "expiresOn": expiry, "metadata": {"nsgGuard": {}}}}]}))
    assert main(["scan", str(nsg_path), "--exemptions", str(tmp_path / "ex.json"), "--format", "json"]) == 1
    findings = json.loads(capsys.readouterr().out)["findings"]
    assert any(f["portKind"] == "exemption" and "not a usable date-time" in f["reason"] for f in findings)


def test_remediate_does_not_plan_rules_a_policy_exemption_approves(tmp_path, capsys):
    from shared.core.model import parse_nsg
    from shared.core.policyexemptions import rule_fingerprint

    doc = nsg([rule("AllowOther", 200, "22", "0.0.0.0/0"), rule("AllowSSH", 300, "22", "*")])  # IPv6 via AllowSSH
    n = parse_nsg(doc)
    ssh = next(r for r in n.rules if r.name == "AllowSSH")
    (tmp_path / "n.json").write_text(json.dumps(doc))
    (tmp_path / "ex.json").write_text(json.dumps([{
        "id": n.id + "/providers/Microsoft.Authorization/policyExemptions/e",
        "properties": {"policyAssignmentId": f"/subscriptions/{n.subscription_id}/providers/Microsoft.Authorization/"
                                             "policyAssignments/nsg-guard-internet-ssh",
                       "exemptionCategory": "Waiver", "expiresOn": "2999-01-01T00:00:00Z",
                       "metadata": {"nsgGuard": {"rules": [{"rule": "AllowSSH",
                                                            "fingerprint": rule_fingerprint(ssh)}]}}},
        "systemData": {"createdBy": "secops@contoso.example", "createdAt": "2998-12-01T00:00:00Z"}}]))
    args = ["remediate", str(tmp_path / "n.json"), "--dry-run", "--format", "json", "--now", "2998-12-02T00:00:00Z"]
    assert main(args) == 0
    planned = {a["offendingRule"] for p in json.loads(capsys.readouterr().out)["plans"] for a in p["actions"]}
    assert planned == {"AllowOther", "AllowSSH"}  # without the file nothing is approved
    assert main([*args, "--exemptions", str(tmp_path / "ex.json")]) == 0
    planned = {a["offendingRule"] for p in json.loads(capsys.readouterr().out)["plans"] for a in p["actions"]}
    assert planned == {"AllowOther"}
