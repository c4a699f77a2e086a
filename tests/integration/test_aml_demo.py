"""``nsg-guard demo``'s Azure ML chapter: the critical compute with its owner, the inventory, the migration of
one compute from 22 to the standard port, and the four seed KPIs populated from stand-in data."""

from __future__ import annotations

import io
import json

from localazure.demo import run_demo
from shared.app.files import load_rows
from shared.core.aml_kpis import compute_aml_kpis


def test_demo_shows_the_ml_lens_end_to_end(tmp_path):
    out = io.StringIO()
    assert run_demo(str(tmp_path), out) == 0
    text = out.getvalue()
    assert "compute event judged ci-ada-gpu: NonCompliant critical (owner ada.okafor@contoso.example)" in text
    assert "4 ML computes in 2 workspaces: 3 compliant (75.0%), 1 critical, 1 without owner" in text
    assert "step 2 WAITING" in text and "step 2 VERIFIED" in text and "step 3 APPLIED" in text
    assert text.index("step 1 APPLIED") < text.index("step 2 VERIFIED") < text.index("step 3 APPLIED")
    assert "ci-ada-gpu now Compliant on TCP 50022" in text and "ML computes: 4 of 4 compliant (100.0%)" in text
    assert "Azure ML lens              ok" in text

    rows = [json.loads(line) for line in (tmp_path / "ingested" / "Custom-NsgGuardFindings.jsonl").read_text()
            .splitlines()]
    inventory = [r for r in rows if r["RecordType"] == "compute" and r["Trigger"] == "sweep"]
    assert len(inventory) == 8 and {r["ComputeName"] for r in inventory} == {
        "ci-ada-gpu", "ci-bob-notebook", "train-a100", "ci-chen-nlp"}
    critical = [r for r in rows if r["RecordType"] == "compute" and r.get("Severity") == "critical"]
    assert critical and all(r["ComputeOwner"] == "ada.okafor@contoso.example" and r["ComputePublicIp"]
                            for r in critical)
    steps = [(r["Details"]["step"], r["Result"]) for r in rows if r.get("Mode") == "migrate-ssh"]
    assert steps == [(1, "applied"), (2, "waiting"), (1, "already-done"), (2, "verified"), (3, "applied")]

    kpis = compute_aml_kpis(load_rows(tmp_path / "kpi-export.jsonl"))
    assert [c["compliancePercent"] for c in kpis.compliance] == [75.0, 100.0]
    assert [(m["compute"], m["resolved"]) for m in kpis.mttr_per_compute] == [("ci-ada-gpu", 1)]
    assert [m["owner"] for m in kpis.mttr_per_owner] == ["ada.okafor@contoso.example"]
    measured = {(f["computer"], f["day"]): f["failedLogins"] for f in kpis.failed_logins if f["measured"] == "measured"}
    assert sum(measured.values()) == 14 + 3 + 41 + 2 + 5 + 1  # "Accepted publickey" lines are not failures
    assert {f["computer"] for f in kpis.failed_logins if f["failedLogins"] is None} == {
        "ci-ada-gpu", "ci-bob-notebook", "train-a100", "ci-chen-nlp"}  # not measured, not zero
    assert sum(b["alerts"] for b in kpis.bruteforce) == 4  # 5 brute-force rows, one exported twice
    (on_compute,) = [b for b in kpis.bruteforce if b["resourceId"].endswith("/computes/ci-ada-gpu")]
    assert on_compute["openFindings"] >= 1 and "critical" in on_compute["severities"]
