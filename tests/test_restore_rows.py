"""``restore`` only undoes what NSG Guard did, and hostile rows are a one-line error (exit 2), never a
traceback or a write."""

from __future__ import annotations

import json

import pytest

from shared.cli import main
from shared.errors import InputError
from shared.restore import plan_restore

NSG_ID = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n"
DENY = {"name": "OwnersDeny", "properties": {"protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22",
                                             "sourceAddressPrefix": "*", "destinationAddressPrefix": "*",
                                             "access": "Deny", "priority": 100, "direction": "Inbound"}}
OPEN = {"name": "AllowSSH", "properties": {**DENY["properties"], "access": "Allow"}}


def row(**kw):
    return {"RecordType": "remediation", "Result": "verified", "Action": "put", "NsgId": NSG_ID, "RowId": "r1",
            "TimeGenerated": "2026-01-01T00:00:00Z", **kw}


@pytest.mark.parametrize(("forged", "message"), [
    (row(RuleBefore=None, RuleAfter=DENY), "not an NSG Guard rule"),            # would delete the owner's Deny
    (row(RuleBefore=OPEN, RuleAfter={**DENY, "name": "nsg-guard-deny-22-x"}), "restore only puts back"),
    (row(RuleBefore=OPEN, RuleAfter=None), "Action is not delete"),            # would create Allow 22 from *
])
def test_forged_rows_are_refused(forged, message):
    with pytest.raises(InputError, match=message):
        plan_restore([forged])


@pytest.mark.parametrize("bad", [
    row(RuleBefore=None, RuleAfter=json.dumps({"name": "nsg-guard-deny-22-x", "properties": {}})[:20]),  # cut
    row(RuleBefore=None, RuleAfter={"name": "nsg-guard-deny-22-x", "properties": {}}, Details="not json at all"),
    row(RuleBefore=None, RuleAfter=["not", "a", "rule"]),
])
def test_malformed_rows_exit_2_with_one_line(bad, tmp_path, capsys):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([bad]))
    if isinstance(bad.get("Details"), str):
        steps = plan_restore([bad])  # Details as a string only loses ordering detail
        assert [s.op for s in steps] == ["delete"]
        return
    assert main(["restore", "--from", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "remediation row r1" in err
