"""Infra for the Azure ML lens: compute columns in table and DCR (from the one schema JSON), the Event Grid
filter for compute writes/deletes, the optional Syslog DCR, and the KPI queries in the workbook."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.infra.test_infra_schema import monitoring, schema  # noqa: F401  (fixture)

REPO = Path(__file__).resolve().parents[2]
COMPUTE_COLUMNS = ["ComputeId", "ComputeName", "ComputeType", "ComputeOwner", "ComputePublicIp"]
AML_QUERIES = ["aml_compute_compliance.kql", "aml_mttr.kql", "aml_failed_ssh_logins.kql",
               "aml_bruteforce_alerts.kql"]


def test_schema_declares_the_compute_columns_as_strings():
    cols = {c["name"]: c["type"] for c in schema()["columns"]}
    assert {name: cols.get(name) for name in COMPUTE_COLUMNS} == dict.fromkeys(COMPUTE_COLUMNS, "string")
    assert "compute" in next(c for c in schema()["columns"] if c["name"] == "RecordType")["description"]


def test_table_and_dcr_carry_the_compute_columns(monitoring):  # noqa: F811
    _, ev = monitoring
    for generated in (ev.name("tableColumns"), ev.name("streamColumns")):
        assert [c for c in generated if c["name"] in COMPUTE_COLUMNS] == [
            {"name": n, "type": "string", **({"description": d} if "description" in generated[0] else {})}
            for n, d in ((c["name"], c["description"]) for c in schema()["columns"] if c["name"] in COMPUTE_COLUMNS)]


def test_code_rows_use_only_schema_columns():
    from shared.app.aml_rows import verdict_rows
    from shared.app.rows import RowContext, validate_rows
    from shared.core.aml import judge, parse_compute
    from shared.core.policy import Engine

    body = json.loads((REPO / "tests/fixtures/azure-reference/aml-compute-cluster.json").read_text())
    rows = verdict_rows(RowContext(trigger="sweep", run_id="s1", sweep_id="s1"),
                        judge(parse_compute(body), Engine().evaluator, []))
    validate_rows(rows)
    assert {r["RecordType"] for r in rows} == {"finding", "compute"}


def test_event_grid_filter_lists_the_compute_operations_the_app_understands():
    from shared.app.events import COMPUTE_OPERATIONS, OPERATIONS, TAGS_WRITE

    eg = (REPO / "infra/eventgrid.bicep").read_text()
    m = re.search(r"var nsgOperations = \[(.*?)\n\]", eg, re.S)
    assert m
    listed = {op.lower() for op in re.findall(r"'([^']+)'", m.group(1))}
    # Tags API writes have a subscription of their own (ANDed filters: only those on an NSG's resource URI).
    assert listed == (set(OPERATIONS) - {TAGS_WRITE}) | set(COMPUTE_OPERATIONS)


def test_role_can_read_computes_but_not_write_them():
    # The role's actions live in infra/role/actions.json (loaded by infra/modules/role.bicep).
    doc = json.loads((REPO / "infra/role/actions.json").read_text())
    role = (REPO / "infra/modules/role.bicep").read_text()
    assert "var roleActions = loadJsonContent('../role/actions.json')" in role
    ml = {a for a in doc["read"] + doc["enforce"] if a.startswith("Microsoft.MachineLearningServices/")}
    assert ml == {"Microsoft.MachineLearningServices/workspaces/read",
                  "Microsoft.MachineLearningServices/workspaces/computes/read",
                  "Microsoft.MachineLearningServices/workspaces/computes/listNodes/action"}
    assert ml <= set(doc["read"])  # read side: granted with or without enforce, and nothing that writes
    assert not any("computes/write" in a or "listKeys" in a for a in doc["read"] + doc["enforce"])


def test_optional_syslog_dcr_collects_auth_and_authpriv():
    pycep = pytest.importorskip("pycep")
    parsed = pycep.BicepParser().parse(text=(REPO / "infra/modules/syslog-dcr.bicep").read_text())
    dcr = parsed["resources"]["syslogDcr"]["config"]
    assert dcr["kind"] == "Linux"
    (source,) = dcr["properties"]["dataSources"]["syslog"]
    assert source["facilityNames"] == ["auth", "authpriv"] and source["streams"] == ["Microsoft-Syslog"]
    assert "Debug" not in source["logLevels"] and "Info" in source["logLevels"]
    main = (REPO / "infra/main.bicep").read_text()
    assert "param deploySyslogDcr bool = false" in main
    assert "module syslogDcr 'modules/syslog-dcr.bicep' = if (deploySyslogDcr)" in main


def test_workbook_has_a_tile_per_seed_kpi():
    workbook = json.loads((REPO / "infra/workbook/nsg-guard.workbook.json").read_text())
    names = {item.get("name") for item in workbook["items"]}
    assert {q.removesuffix(".kql") for q in AML_QUERIES} <= names
    for q in AML_QUERIES:
        text = (REPO / "queries" / q).read_text()
        item = next(i for i in workbook["items"] if i.get("name") == q.removesuffix(".kql"))
        assert item["content"]["query"] == text.strip() + "\n"


def test_kql_check_knows_the_workspace_tables_the_kpis_read():
    tables = json.loads((REPO / "infra/kql/workspace_tables.json").read_text())["tables"]
    cols = {t["table"]: {c["name"] for c in t["columns"]} for t in tables}
    assert {"Computer", "ProcessName", "SyslogMessage", "TimeGenerated"} <= cols["Syslog"]
    assert {"SystemAlertId", "AlertType", "ResourceId", "AlertSeverity", "TimeGenerated"} <= cols["SecurityAlert"]
