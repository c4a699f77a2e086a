"""Revert job messages are hostile input: each bad one is a clear InputError (the job is acknowledged and
logged), never an exception that poisons the queue; JIT identity protects the event's rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from shared.app.events import Actor, NsgChange
from shared.app.revertjobs import RevertJob, job_for
from shared.core.errors import InputError

NSG_ID = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.Network/networkSecurityGroups/n"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def test_job_round_trips():
    job = RevertJob(NSG_ID, "evt-1", NOW, "corr", Actor("ada", "oid", "User", "app"), ("R",))
    assert RevertJob.parse(json.dumps(job.to_json())) == job


@pytest.mark.parametrize(("body", "message"), [
    ("not json", "not JSON"),
    ("[1, 2]", "not a JSON object"),
    (json.dumps({"nsgId": NSG_ID}), "nsgId and eventId"),
    (json.dumps({"nsgId": "/subscriptions/s1/resourceGroups/rg", "eventId": "e", "enqueuedAt": NOW.isoformat()}),
     "not an NSG resource id"),
    (json.dumps({"nsgId": NSG_ID, "eventId": "e", "enqueuedAt": "yesterday"}), "ISO 8601"),
    (json.dumps({"nsgId": NSG_ID, "eventId": "e", "enqueuedAt": NOW.isoformat(), "protected": "R"}), "list"),
    ("x" * 20000, "bytes"),
])
def test_hostile_messages_are_input_errors(body, message):
    with pytest.raises(InputError, match=message):
        RevertJob.parse(body)


def _change(object_id: str) -> NsgChange:
    return NsgChange("e", "Microsoft.Resources.ResourceWriteSuccess", "op", "rule-write", f"{NSG_ID}/securityRules/R",
                     NSG_ID, "SecurityCenter-JITRule-1", "s1", "rg", None, None,
                     Actor("jit", object_id, "ServicePrincipal"), "eventgrid")


def test_rule_written_by_the_jit_identity_is_protected():
    assert job_for(_change("JIT-OID"), NOW, frozenset({"jit-oid"})).protected == ("SecurityCenter-JITRule-1",)
    assert job_for(_change("someone"), NOW, frozenset({"jit-oid"})).protected == ()
