"""The README's main command: the offline demo runs end to end and shows the attributed finding."""

from __future__ import annotations

import io
import json

from localazure.demo import run_demo


def test_demo_detects_and_attributes_the_incident(tmp_path):
    out = io.StringIO()
    assert run_demo(str(tmp_path), out) == 0
    text = out.getvalue()
    assert "28 NSGs listed and evaluated: 28 compliant (100.0%)" in text
    assert "ada.okafor@contoso.example" in text and "-> on_nsg_change" in text
    assert "Demo succeeded" in text
    rows = [json.loads(line) for line in (tmp_path / "ingested" / "Custom-NsgGuardFindings.jsonl").read_text()
            .splitlines()]
    finding = next(r for r in rows if r["RecordType"] == "finding")
    assert (finding["Severity"], finding["Actor"], finding["NsgName"]) == \
        ("high", "ada.okafor@contoso.example", "ci-gpu-03-nsg")
