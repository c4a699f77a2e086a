"""The findings table, the DCR stream declaration and the code's row schema are one schema.

shared/schema/findings_table.json is the single source of truth. infra/main.bicep loads it with
loadJsonContent and passes it to infra/modules/monitoring.bicep, which builds the table columns and the DCR
stream columns from it with for-expressions and two type maps. These tests

* resolve the loadJsonContent path relative to main.bicep and check it is that file;
* parse monitoring.bicep with pycep (the parser checkov uses) and *evaluate* the two for-expressions, the
  type maps, the stream key and the output stream against the schema file, so a column added to the JSON is
  provably in the table and in the DCR with matching names, order and compatible types;
* check the type vocabulary against the documented enums (table ColumnTypeEnum; DCR column types).

The pycep-based tests are skipped where pycep is not installed (the app venv); infra/validate.sh runs them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
SCHEMA_FILE = REPO / "shared" / "schema" / "findings_table.json"

# Log Analytics tables API ColumnTypeEnum / DCR streamDeclarations column types (Microsoft Learn:
# "Microsoft.OperationalInsights workspaces/tables" and "Microsoft.Insights dataCollectionRules").
TABLE_TYPES = {"string", "int", "long", "real", "boolean", "dateTime", "guid", "dynamic"}
STREAM_TYPES = {"string", "int", "long", "real", "boolean", "datetime", "dynamic"}
# What the schema file may say (the vocabulary the app and the local Logs Ingestion stand-in use).
SCHEMA_TYPES = {"string", "int", "long", "real", "boolean", "datetime", "guid", "dynamic"}


def schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text())


# --------------------------------------------------------------------------------------------------
# Always-on checks (no pycep needed)
# --------------------------------------------------------------------------------------------------


def test_schema_file_is_well_formed():
    s = schema()
    assert s["table"].endswith("_CL")
    assert s["stream"].startswith("Custom-")
    names = [c["name"] for c in s["columns"]]
    assert len(names) == len(set(names)), "duplicate column"
    assert names[0] == "TimeGenerated" and s["columns"][0]["type"] == "datetime"
    for c in s["columns"]:
        assert c["type"] in SCHEMA_TYPES, c
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", c["name"]), c["name"]
        assert c.get("description"), c["name"]
    # Columns the KQL, alerts and MTTR depend on.
    for needed in (
        "RowId",
        "RecordType",
        "FindingId",
        "Status",
        "Severity",
        "Port",
        "NsgId",
        "Owner",
        "SubscriptionId",
        "Actor",
        "ActorType",
        "Action",
        "Mode",
        "Result",
        "SweepId",
        "OpenFindingIds",
        "Details",
    ):
        assert needed in names, needed


def test_main_bicep_loads_the_schema_file_the_code_uses():
    text = (INFRA / "main.bicep").read_text()
    paths = re.findall(r"loadJsonContent\('([^']+)'\)", text)
    assert paths == ["../shared/schema/findings_table.json"]
    assert (INFRA / paths[0]).resolve() == SCHEMA_FILE.resolve()
    # ...and hands that object to the monitoring module, and the stream name to the app settings.
    assert re.search(r"findingsSchema:\s*findingsSchema", text)
    assert "LOGS_STREAM_NAME: findingsSchema.stream" in text


def test_code_reads_the_same_schema_file():
    """The app's row builder and the local Logs Ingestion stand-in validate against this very file."""
    import json

    from shared.app.rows import RowContext, evaluation_row, validate_rows
    from shared.schema import SCHEMA_PATH, findings_schema

    assert SCHEMA_PATH.resolve() == SCHEMA_FILE.resolve()
    declared = [c["name"] for c in json.loads(SCHEMA_FILE.read_text())["columns"]]
    assert [name for name, _ in findings_schema().columns] == declared
    row = evaluation_row(RowContext(trigger="cli", run_id="t"), None, (),
                         nsg_id="/subscriptions/s/resourceGroups/r/providers/Microsoft.Network/networkSecurityGroups/n")
    validate_rows([row])
    with pytest.raises(ValueError, match="not in the table schema"):
        validate_rows([{**row, "NotAColumn": 1}])
    assert "findings_table.json" in (REPO / "localazure" / "ingestion.py").read_text()


# --------------------------------------------------------------------------------------------------
# pycep: evaluate what monitoring.bicep builds from the schema
# --------------------------------------------------------------------------------------------------


class _Eval:
    """Evaluates the handful of Bicep expression shapes pycep produces that the module uses."""

    def __init__(self, parsed: dict, env: dict):
        self.vars = parsed.get("variables", {})
        self.env = dict(env)

    def name(self, ident: str):
        if ident in self.env:
            return self.env[ident]
        if ident in self.vars:
            v = self.value(self.vars[ident]["value"])
            self.env[ident] = v
            return v
        raise KeyError(ident)

    def string(self, s: str, *, key: bool = False):
        if not key and (s in self.env or s in self.vars):
            return self.name(s)

        def sub(m):
            path = m.group(1).split(".")
            v = self.name(path[0])
            for p in path[1:]:
                v = v[p]
            return str(v)

        return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)\}", sub, s)

    def value(self, node):
        if isinstance(node, str):
            return self.string(node)
        if isinstance(node, list):
            return [self.value(n) for n in node]
        if not isinstance(node, dict):
            return node
        if "loop_type" in node:
            detail = node["loop_type"]["detail"]
            items = self.value(detail["array_name"])
            out = []
            for item in items:
                inner = _Eval({"variables": self.vars}, {**self.env, detail["item_name"]: item})
                out.append(inner.value(node["config"]))
            return out
        if "operator" in node:
            op = node["operator"]
            a, b = op["operands"]["operand_1"], op["operands"]["operand_2"]
            base = self.value(a)
            if isinstance(base, str):  # a resource symbol such as workspace.id: keep it symbolic
                return f"{base}.{b}"
            if op["type"] == "property_accessor":
                return base[b]
            if op["type"] == "index_accessor":
                return base[self.value(b)]
            raise AssertionError(f"operator {op['type']} not modelled")
        return {self.string(k.strip("'"), key=True): self.value(v) for k, v in node.items()}


@pytest.fixture(scope="module")
def monitoring():
    pycep = pytest.importorskip("pycep")
    parsed = pycep.BicepParser().parse(text=(INFRA / "modules" / "monitoring.bicep").read_text())
    return parsed, _Eval(parsed, {"findingsSchema": schema()})


def test_table_columns_are_generated_from_every_schema_column(monitoring):
    parsed, ev = monitoring
    cols = ev.name("tableColumns")
    s = schema()
    assert [c["name"] for c in cols] == [c["name"] for c in s["columns"]]
    assert [c["description"] for c in cols] == [c["description"] for c in s["columns"]]
    assert {c["type"] for c in cols} <= TABLE_TYPES
    table = parsed["resources"]["findingsTable"]
    assert table["type"] == "Microsoft.OperationalInsights/workspaces/tables"
    assert ev.value(table["config"]["name"]) == s["table"]
    assert ev.value(table["config"]["properties"]["schema"]["name"]) == s["table"]
    assert table["config"]["properties"]["schema"]["columns"] == "tableColumns"


def test_dcr_stream_columns_are_generated_from_every_schema_column(monitoring):
    parsed, ev = monitoring
    cols = ev.name("streamColumns")
    s = schema()
    assert [c["name"] for c in cols] == [c["name"] for c in s["columns"]]
    assert {c["type"] for c in cols} <= STREAM_TYPES
    dcr = parsed["resources"]["dcr"]
    assert dcr["type"] == "Microsoft.Insights/dataCollectionRules"
    assert dcr["config"]["kind"] == "Direct"
    props = ev.value(dcr["config"]["properties"])
    assert list(props["streamDeclarations"]) == [s["stream"]]
    assert props["streamDeclarations"][s["stream"]]["columns"] == cols
    (flow,) = props["dataFlows"]
    assert flow["streams"] == [s["stream"]]
    assert flow["outputStream"] == f"Custom-{s['table']}"
    assert flow["transformKql"] == "source"
    assert flow["destinations"] == [d["name"] for d in props["destinations"]["logAnalytics"]]


def test_table_and_stream_types_agree_column_by_column(monitoring):
    _, ev = monitoring
    table = {c["name"]: c["type"] for c in ev.name("tableColumns")}
    stream = {c["name"]: c["type"] for c in ev.name("streamColumns")}
    # The only differences allowed: spelling of datetime, and guid travelling as string in the stream.
    compatible = {("dateTime", "datetime"), ("guid", "string")}
    for name, ttype in table.items():
        stype = stream[name]
        assert ttype == stype or (ttype, stype) in compatible, (name, ttype, stype)


def test_type_maps_cover_the_whole_schema_vocabulary(monitoring):
    _, ev = monitoring
    assert set(ev.name("tableTypes")) == SCHEMA_TYPES
    assert set(ev.name("streamTypes")) == SCHEMA_TYPES
    assert set(ev.name("tableTypes").values()) <= TABLE_TYPES
    assert set(ev.name("streamTypes").values()) <= STREAM_TYPES


def test_dcr_outputs_feed_the_app_settings():
    main = (INFRA / "main.bicep").read_text()
    mon = (INFRA / "modules" / "monitoring.bicep").read_text()
    assert "dcr.properties.endpoints.logsIngestion" in mon
    assert "dcr.properties.immutableId" in mon
    assert "LOGS_INGESTION_ENDPOINT: monitoring.outputs.logsIngestionEndpoint" in main
    assert "LOGS_DCR_IMMUTABLE_ID: monitoring.outputs.dcrImmutableId" in main
