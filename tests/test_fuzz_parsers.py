"""Fuzzing every parser of hostile input (hypothesis): NSGs, events, table rows (report and restore).

Issue 9 item 4: any value from a tag, event, row or file is hostile. Each parser must either return or raise
our :class:`InputError` (a finding or a clear error for that one item): never ``OverflowError``,
``KeyError``, ``TypeError``... that would stop a batch, make Event Grid retry for 24 h or print a traceback.
Inputs are valid documents with one or more values replaced by random JSON, plus wholly random JSON.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.app.events import parse_event
from shared.app.restore import plan_restore
from shared.core.errors import InputError
from shared.core.kpis import compute_kpis, render_report
from shared.core.model import iter_nsg_documents, parse_nsg
from shared.core.policy import Engine
from tests.eventfactory import event_dict
from tests.nsgfactory import nsg, nsg_id, reference, rule

HOSTILE_TIMES = ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.9999999Z",
                 "0001-01-01", "2026-02-30T00:00:00Z", "2026-01-01T00:00:00+24:00", "", " ", "Z", "1e309"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                    st.text(max_size=20), st.sampled_from(HOSTILE_TIMES),
                    st.sampled_from(["*", "Any", "Internet", "22", "0-65535", "65536", "-1", "1-", "AzureCloud.x",
                                     "Internet.WestEurope", "::/0", "0.0.0.0/0", "10.0.0.0/33", "Tcp", "Allow",
                                     "Inbound", "Deny"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                           max_leaves=12)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def paths_of(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += paths_of(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += paths_of(v, (*prefix, i))
    return out


def mutate(doc: Any, data: st.DataObject, rounds: int = 3) -> Any:
    """Replace (or delete) the values at a few random places of ``doc``."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, rounds))):
        paths = [p for p in paths_of(doc) if p]
        if not paths:
            return data.draw(json_values)
        path = data.draw(st.sampled_from(paths))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(json_values)
    return doc


def only_input_errors(fn, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except InputError:
        return None


ENGINE = Engine()
VALID_NSG = nsg([rule("AllowSSH", 300, "22", ["10.0.0.0/8", "AzureCloud"]),
                 rule("DenyAll", 400, ["22", "3389"], "Internet", access="Deny")], tags={"owner": "x"})
VALID_NSG["properties"]["securityRules"][0]["properties"]["sourcePortRange"] = "1024-65535"


@FUZZ
@given(st.data(), st.booleans())
def test_nsg_parser_raises_only_input_errors(data, strict):
    doc = mutate(VALID_NSG, data, rounds=4)
    parsed = only_input_errors(parse_nsg, doc, strict=strict)
    if parsed is not None:
        ENGINE.evaluate(parsed)  # whatever parses also evaluates


@FUZZ
@given(json_values)
def test_nsg_documents_of_random_json_raise_only_input_errors(doc):
    try:
        for item in iter_nsg_documents(doc):
            only_input_errors(parse_nsg, item)
    except InputError:
        pass


SAMPLE_NSG_ID = nsg_id("nsg1")
EVENTS = [event_dict("eventgrid-rule-write.json", SAMPLE_NSG_ID, "AllowSSH"),
          event_dict("eventgrid-nsg-write.json", SAMPLE_NSG_ID),
          event_dict("eventgrid-rule-delete.json", SAMPLE_NSG_ID, "AllowSSH"),
          reference("cloudevent-rule-write.json")[0]]


@FUZZ
@given(st.data(), st.sampled_from(range(len(EVENTS))))
def test_event_parser_raises_only_input_errors(data, which):
    event = mutate(EVENTS[which], data)
    only_input_errors(parse_event, event)
    only_input_errors(parse_event, json.dumps(event))


@FUZZ
@given(st.sampled_from(HOSTILE_TIMES), st.sampled_from(range(len(EVENTS))))
def test_event_with_hostile_time_raises_only_input_errors(value, which):
    event = copy.deepcopy(EVENTS[which])
    event["eventTime" if "eventTime" in event else "time"] = value
    only_input_errors(parse_event, event)


def table_rows() -> list[dict[str, Any]]:
    base = {"TimeGenerated": "2026-03-01T10:00:00.1234567Z", "NsgId": SAMPLE_NSG_ID, "SubscriptionId": "s",
            "EngineVersion": "1"}
    return [
        {**base, "RowId": "a", "RecordType": "finding", "FindingId": "f1", "Status": "Open", "Severity": "high",
         "Port": 22, "Owner": "o", "Actor": "ada", "Exposure": "internet"},
        {**base, "RowId": "b", "RecordType": "evaluation", "OpenFindingIds": ["f1"], "Status": "Evaluated"},
        {**base, "RowId": "c", "RecordType": "sweep", "SweepId": "sw", "Details": {"nsgs": 3, "compliant": 2}},
        {**base, "RowId": "d", "RecordType": "remediation", "Result": "verified", "Action": "put",
         "RuleBefore": None, "RuleAfter": {"name": "nsg-guard-deny-22-x", "properties": {"priority": 299}},
         "Details": json.dumps({"attempt": 1, "sequence": 0}), "FindingId": "f1", "Port": 22},
        {**base, "RowId": "e", "RecordType": "remediation", "Result": "applied", "Action": "delete",
         "RuleBefore": json.dumps({"name": "AllowSSH", "properties": {"priority": 300}}), "RuleAfter": None,
         "Details": {"attempt": 1, "sequence": 1}},
    ]


@FUZZ
@given(st.data())
def test_report_row_reader_raises_only_input_errors(data):
    rows = mutate(table_rows(), data, rounds=4)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return  # the file reader (shared/app/files.py) rejects non-object rows before this point
    k = only_input_errors(compute_kpis, rows)
    if k is not None:
        render_report(k)
        json.dumps(k.to_json())


@FUZZ
@given(st.data())
def test_restore_row_reader_raises_only_input_errors(data):
    rows = mutate(table_rows(), data, rounds=4)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        return
    only_input_errors(plan_restore, rows)


@FUZZ
@given(st.sampled_from(HOSTILE_TIMES))
def test_report_with_hostile_time_raises_only_input_errors(value):
    rows = table_rows()
    rows[0]["TimeGenerated"] = value
    k = only_input_errors(compute_kpis, rows)
    if k is not None:
        render_report(k)
