"""``restore`` only undoes what NSG Guard did, and hostile rows are a one-line error (exit 2), never a
traceback or a write."""

from __future__ import annotations

import json

import pytest

from shared.app.restore import plan_restore
from shared.cli import main
from shared.core.errors import InputError

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
    (row(RuleBefore=OPEN, RuleAfter=None, Action="delete", RuleName="Other"), "never deletes"),
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
    # one line naming the row (its RowId), or, for a dynamic column that is not JSON (caught while the
    # export is read), the file, the column and the line
    assert len(err.splitlines()) == 1
    assert "remediation row r1" in err or ("rows.json" in err and "column RuleAfter" in err and "(line 1)" in err)


def test_remediate_json_by_default_only_adds_our_rules_and_deletes_our_own(tmp_path, capsys):
    from tests.nsgfactory import nsg, rule

    nsgs = [nsg([rule("AllowSSH", 100, "22", "*")], name="top"),                     # no room: skipped, not edited
            nsg([rule("AllowWebSSH", 100, ["22", "443"], "Internet")], name="web"),  # narrowing is opt-in
            nsg([rule("AllowSSH", 300, "22", "*"), rule("AllowRDP", 310, "3389", "*")], name="mid"),
            nsg([rule(f"S{i}", 300 + 2 * i, "22", f"{16 * i}.0.0.0/4") for i in range(16)], name="split")]
    path = tmp_path / "nsgs.json"
    path.write_text(json.dumps(nsgs))
    assert main(["remediate", str(path), "--dry-run", "--format", "json", "--max-changes", "10"]) == 0
    plans = json.loads(capsys.readouterr().out)["plans"]
    actions = [a for p in plans for a in p["actions"]]
    assert actions and all((a["op"] == "put" and a["replaces"] is None and a["rule"]["name"].startswith("nsg-guard-"))
                           or (a["op"] == "delete" and a["rule"]["name"].startswith("nsg-guard-")) for a in actions)
    split = next(p for p in plans if p["nsgName"] == "split")
    assert [a["strategy"] for a in split["actions"]] == ["broad-deny"]


def test_genuine_delete_rows_are_restorable():
    own = {"name": "nsg-guard-deny-22-0123456789abcdef", "properties": DENY["properties"]}
    gc = row(RuleBefore=own, RuleAfter=None, Action="delete", RuleName="AllowSSH")
    narrowed = row(RuleBefore=OPEN, RuleAfter=None, Action="delete", RuleName="AllowSSH", RowId="r2",
                   Details={"strategy": "narrow-ports"})
    assert [(s.op, s.rule_name) for s in plan_restore([gc, narrowed])] == [
        ("put", own["name"]), ("put", "AllowSSH")]
