"""KPIs from hand-checked rows: the numbers below are worked out by hand in the comments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.app.files import load_rows
from shared.cli import main
from shared.core.kpis import compute_kpis, dedupe, parse_time, render_report

T0 = "2026-11-20T10:00:00Z"


def at(hours: float) -> str:
    base = parse_time(T0).timestamp() + hours * 3600
    from datetime import UTC, datetime

    return datetime.fromtimestamp(base, UTC).isoformat().replace("+00:00", "Z")


def finding(rid, fid, nsg, hours, severity="high", status="Open", owner=None, port=22, actor=None, sub="s1"):
    row = {"RowId": rid, "RecordType": "finding", "FindingId": fid, "NsgId": f"/subscriptions/{sub}/x/{nsg}",
           "SubscriptionId": sub, "Severity": severity, "Status": status, "Port": port, "TimeGenerated": at(hours)}
    if owner:
        row["Owner"] = owner
    if actor:
        row.update(Actor=actor, ActorType="User")
    return row


def evaluation(rid, nsg, hours, open_ids, sub="s1"):
    return {"RowId": rid, "RecordType": "evaluation", "NsgId": f"/subscriptions/{sub}/X/{nsg}".replace("/X/", "/x/"),
            "OpenFindingIds": open_ids, "TimeGenerated": at(hours)}


ROWS = [
    # sweeps: 7/10 then 9/10; the second sweep row arrives twice (outbox retry) -> counted once
    {"RowId": "sw1", "RecordType": "sweep", "SweepId": "s-1", "TimeGenerated": at(-24),
     "Details": {"nsgs": 10, "compliant": 7}},
    {"RowId": "sw2", "RecordType": "sweep", "SweepId": "s-2", "TimeGenerated": at(24),
     "Details": {"nsgs": 10, "compliant": 9}},
    {"RowId": "sw2", "RecordType": "sweep", "SweepId": "s-2", "TimeGenerated": at(24),
     "Details": {"nsgs": 10, "compliant": 9}},
    # F1 high on A, opened at 0 by ada, resolved by A's evaluation at +5 h -> 5 h
    finding("f1a", "F1", "A", 0, owner="team-a", actor="ada@contoso.example"),
    evaluation("e1", "A", 0, ["F1"]),
    evaluation("e2", "A", 5, []),
    # F2 medium on B, opened at +1 h, a Resolved finding row at +3 h (2 h) beats B's evaluation at +10 h (9 h)
    finding("f2a", "F2", "B", 1, severity="medium", owner="team-b", port=3389),
    evaluation("e3", "B", 1, ["F2"]),
    finding("f2r", "F2", "B", 3, severity="medium", status="Resolved", owner="team-b", port=3389),
    evaluation("e4", "B", 10, []),
    # F3 high on C (another subscription), open since 0, seen again at +20 h: still open, not resolved
    finding("f3a", "F3", "C", 0, owner="team-c", actor="ada@contoso.example", sub="s2"),
    finding("f3b", "F3", "C", 20, owner="team-c", sub="s2"),
    evaluation("e5", "C", 20, ["F3"], sub="s2"),
    # F4 critical on D, no owner tag, open
    finding("f4a", "F4", "D", 2, severity="critical"),
    evaluation("e6", "D", 2, ["F4"]),
    # F5: latest finding row Latent (unattached) -> not open even though an old evaluation listed it
    finding("f5a", "F5", "E", 0, owner="team-e"),
    evaluation("e7", "E", 0, ["F5"]),
    finding("f5b", "F5", "E", 24, severity="info", status="Latent", owner="team-e"),
    evaluation("e8", "E", 24, []),
    # two reverts the same day
    {"RowId": "r1", "RecordType": "remediation", "Result": "verified", "Mode": "enforce", "TimeGenerated": at(1)},
    {"RowId": "r2", "RecordType": "remediation", "Result": "verified", "Mode": "enforce", "TimeGenerated": at(2)},
]


def test_compliance_over_time_dedupes_by_row_id():
    k = compute_kpis(ROWS)
    assert [(c["sweepId"], c["nsgs"], c["compliant"], c["compliancePercent"]) for c in k.compliance] == \
        [("s-1", 10, 7, 70.0), ("s-2", 10, 9, 90.0)]
    assert k.rows == len(ROWS) - 1


def test_open_findings_by_severity_owner_subscription():
    k = compute_kpis(ROWS)
    assert k.open_by_severity == [("critical", 1), ("high", 1)]  # F4, F3
    assert k.open_by_owner == [("(no owner tag)", 1), ("team-c", 1)]
    assert k.open_by_subscription == [("s1", 1), ("s2", 1)]


def test_mttr_first_seen_to_resolved():
    k = compute_kpis(ROWS)
    # F1 5 h (high), F2 2 h (medium), F5 24 h (high: the evaluation at +24 h no longer lists it)
    by = {m["severity"]: m for m in k.mttr}
    assert by["high"] == {"severity": "high", "resolved": 2, "mttrHours": 14.5, "p50Hours": 5.0, "p90Hours": 24.0}
    assert by["medium"]["mttrHours"] == 2.0 and by["medium"]["resolved"] == 1
    assert by["all"]["resolved"] == 3 and by["all"]["mttrHours"] == pytest.approx((5 + 2 + 24) / 3, abs=0.01)
    assert [m["severity"] for m in k.mttr] == ["high", "medium", "all"]


def test_reverts_and_top_actors():
    ahead = {"RowId": "r0", "RecordType": "remediation", "Result": "planned", "Mode": "enforce",
             "TimeGenerated": at(1), "Details": {"writeAhead": True}}  # the intent before r1's write
    k = compute_kpis([*ROWS, ahead])
    assert k.reverts == [{"day": "2026-11-20", "result": "verified", "mode": "enforce", "remediations": 2}]
    (actor,) = k.top_actors
    assert (actor["actor"], actor["findings"], actor["nsgs"]) == ("ada@contoso.example", 2, 2)


def test_dedupe_keeps_latest_per_row_id():
    rows = dedupe([{"RowId": "a", "TimeGenerated": at(0), "v": 1}, {"RowId": "a", "TimeGenerated": at(1), "v": 2}])
    assert [r["v"] for r in rows] == [2]
    assert parse_time("2026-11-20T10:00:00.1234567Z").microsecond == 123456


def test_report_command_reads_jsonl(tmp_path, capsys):
    path = tmp_path / "rows.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    assert len(list(load_rows(path))) == len(ROWS)
    assert main(["report", "--from", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Mean time to remediate" in out and "s-2" in out and "90.0" in out
    assert main(["report", "--from", str(path), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["openFindings"]["bySeverity"] == {"critical": 1, "high": 1}
    assert "ada@contoso.example" in render_report(compute_kpis(ROWS))


def test_report_bad_file_is_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    assert main(["report", "--from", str(bad)]) == 2
    assert "line 1 is not JSON" in capsys.readouterr().err


def test_row_files_are_read_strictly(tmp_path):
    from shared.core.errors import InputError

    good = tmp_path / "rows.json"
    good.write_text(json.dumps({"value": ROWS}))
    assert load_rows(good) == [dict(r) for r in ROWS]
    for content, message in (("[1, 2]", "every row must be a JSON object"), ('{"a": 1}\n{oops', "line 2 is not JSON"),
                             ('"text"', "expected table rows")):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(content)
        with pytest.raises(InputError, match=message):
            load_rows(bad)


def _as_log_analytics_export(rows):
    """What `az monitor log-analytics query` / a portal export hands over: dynamic columns as JSON strings,
    ints and booleans as strings."""
    out = []
    for row in rows:
        r = dict(row)
        for col in ("OpenFindingIds", "Details", "Sources"):
            if col in r:
                r[col] = json.dumps(r[col])
        if "Port" in r:
            r["Port"] = str(r["Port"])
        out.append(r)
    return out


def _report_json(rows):
    """What ``report --json`` prints: the KPIs and, always, the Azure ML section (empty lists here)."""
    from shared.core.aml_kpis import compute_aml_kpis

    return {**compute_kpis(rows).to_json(), "azureMl": compute_aml_kpis(rows).to_json()}


def test_report_decodes_log_analytics_dynamic_columns_as_json_strings(tmp_path, capsys):
    """OpenFindingIds as a JSON string was read as a list of characters: open findings showed as resolved."""
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_as_log_analytics_export(ROWS)))
    assert main(["report", "--from", str(path), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported == _report_json(ROWS)
    assert exported["openFindings"]["bySeverity"] == {"critical": 1, "high": 1}


def test_report_reads_the_log_analytics_query_api_tables_shape(tmp_path, capsys):
    rows = _as_log_analytics_export(ROWS)
    columns = sorted({k for r in rows for k in r})
    doc = {"tables": [{"name": "PrimaryResult", "columns": [{"name": c, "type": "string"} for c in columns],
                       "rows": [[r.get(c) for c in columns] for r in rows]}]}
    path = tmp_path / "query.json"
    path.write_text(json.dumps(doc))
    assert main(["report", "--from", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == _report_json(ROWS)


@pytest.mark.parametrize(("content", "message"), [
    (json.dumps([{"name": "nsg1", "id": "/subscriptions/x", "properties": {}}]), "line 1 is not an NSG Guard "
                                                                                 "table row (no RecordType)"),
    ('{"RecordType": "finding"}\n{"nsg": 1}\n', "line 2 is not an NSG Guard table row"),
    ('{"RecordType": "compute", "Status": "Compliant"}\n', "no rows of kind 'finding' or 'evaluation'"),
    ("", "no table rows in the file"),
    ('[\n  {"RecordType": "sweep"},\n  {"x": 1}\n]', "line 3 is not an NSG Guard table row"),
    ('{"RecordType": "evaluation", "OpenFindingIds": "F1,F2"}\n', "column OpenFindingIds is dynamic but holds"),
])
def test_report_rejects_files_without_rows_of_the_expected_kind(tmp_path, capsys, content, message):
    path = tmp_path / "rows.jsonl"
    path.write_text(content)
    assert main(["report", "--from", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err


def test_restore_rejects_a_file_of_nsgs_not_rows(tmp_path, capsys):
    path = tmp_path / "nsgs.json"
    path.write_text(Path("examples/estate.json").read_text())
    assert main(["restore", "--from", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "not an NSG Guard table row (no RecordType)" in err and str(path) in err and "line 3 " in err


def test_restore_rejects_a_file_without_remediation_rows(tmp_path, capsys):
    path = tmp_path / "findings.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in ROWS if r["RecordType"] != "remediation") + "\n")
    assert main(["restore", "--from", str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "no rows of kind 'remediation'" in err and str(path) in err
