#!/usr/bin/env python3
"""Build infra/workbook/nsg-guard.workbook.json (Azure Monitor workbook, Notebook/1.0) from queries/*.kql.

    python infra/workbook/build.py           # rewrite the JSON
    python infra/workbook/build.py --check   # exit 1 if the committed JSON is stale (used by tests/CI)

The queries are the single source: edit queries/*.kql, rebuild, commit both. `__WORKSPACE_ID__` is replaced
by infra/modules/workbook.bicep with the Log Analytics workspace id at deployment time.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
QUERIES = ROOT / "queries"
OUT = Path(__file__).resolve().with_name("nsg-guard.workbook.json")
WORKSPACE_PLACEHOLDER = "__WORKSPACE_ID__"
LA = "microsoft.operationalinsights/workspaces"
DAY_MS = 86_400_000

# (query file, title, visualization, width %, time context: "param" = the TimeRange picker, or fixed days)
PANELS = [
    ("compliance_over_time.kql", "Compliance % over time (per sweep)", "linechart", 100, "param"),
    ("open_findings_by_severity.kql", "Open findings by severity", "barchart", 33, 30),
    ("open_findings_by_owner.kql", "Open findings by owner", "table", 33, 30),
    ("open_findings_by_subscription.kql", "Open findings by subscription", "table", 34, 30),
    ("mttr.kql", "Mean time to remediate (hours)", "table", 50, "param"),
    ("reverts.kql", "Reverts per day", "barchart", 50, "param"),
    ("top_actors_port22.kql", "Top actors opening TCP 22 to the internet", "table", 100, "param"),
    ("exempt_findings_by_severity.kql", "Exempt findings by severity (beside the open ones)", "barchart", 33, 30),
    ("exemptions_in_force.kql", "Exemptions in force (approver, expiry)", "table", 67, 30),
    ("aml_compute_compliance.kql", "Azure ML: % of compute instances/clusters compliant (per sweep)", "linechart",
     50, "param"),
    ("aml_mttr.kql", "Azure ML: time to remediate SSH exposure, per compute and owner (hours)", "table", 50,
     "param"),
    ("aml_failed_ssh_logins.kql", "Failed SSH logins per computer per day (Syslog; AML computes not measured)",
     "table", 50, "param"),
    ("aml_bruteforce_alerts.kql", "Brute-force alerts (Defender for Cloud) joined to open findings", "table", 50,
     "param"),
]


def _query_text(name: str) -> str:
    return (QUERIES / name).read_text(encoding="utf-8").strip() + "\n"


def build() -> dict:
    items: list[dict] = [
        {
            "type": 1,
            "content": {
                "json": "## NSG Guard\n"
                "Exposure of SSH and management ports to the internet across the estate: compliance from "
                "the nightly sweep, open findings, time to remediate, reverts and who opens port 22.\n"
                "Source table: `NsgGuardFindings_CL`. Queries: `queries/*.kql` in the repository."
            },
            "name": "title",
        },
        {
            "type": 9,
            "content": {
                "version": "KqlParameterItem/1.0",
                "parameters": [
                    {
                        "id": "6f0c3f7e-8d7a-4d64-9d8e-2f3b1b1b2a01",
                        "version": "KqlParameterItem/1.0",
                        "name": "TimeRange",
                        "label": "Time range",
                        "type": 4,
                        "isRequired": True,
                        "value": {"durationMs": 30 * DAY_MS},
                        "typeSettings": {
                            "selectableValues": [{"durationMs": d * DAY_MS} for d in (1, 7, 14, 30, 60, 90)],
                            "allowCustom": True,
                        },
                    }
                ],
                "style": "pills",
                "queryType": 0,
                "resourceType": LA,
            },
            "name": "parameters",
        },
    ]
    for file, title, viz, width, time in PANELS:
        content = {
            "version": "KqlItem/1.0",
            "query": _query_text(file),
            "size": 0,
            "title": title,
            "queryType": 0,
            "resourceType": LA,
            "crossComponentResources": [WORKSPACE_PLACEHOLDER],
            "visualization": viz,
        }
        if time == "param":
            content["timeContextFromParameter"] = "TimeRange"
        else:
            content["timeContext"] = {"durationMs": time * DAY_MS}
        items.append(
            {
                "type": 3,
                "content": content,
                "customWidth": str(width),
                "name": file.removesuffix(".kql"),
            }
        )
    return {
        "version": "Notebook/1.0",
        "items": items,
        "fallbackResourceIds": [WORKSPACE_PLACEHOLDER],
        "$schema": "https://github.com/Microsoft/Application-Insights-Workbooks/blob/master/schema/workbook.json",
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not OUT.exists() or OUT.read_text(encoding="utf-8") != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run python infra/workbook/build.py", file=sys.stderr)
            return 1
        print(f"{OUT.relative_to(ROOT)} is up to date")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)} ({len(PANELS)} panels)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
