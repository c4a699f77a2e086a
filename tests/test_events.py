"""The typed Event Grid wrapper over every reference sample, and malformed variants."""

from __future__ import annotations

import copy
import json

import pytest

from shared.app.events import Ignored, NsgChange, nsg_of, parse_event
from shared.core.errors import InputError
from tests.eventfactory import SAMPLE_NSG, function_event
from tests.nsgfactory import reference

SAMPLES = {
    "eventgrid-rule-write.json": ("rule-write", "AllowSSH", "eventgrid"),
    "eventgrid-nsg-write.json": ("nsg-write", None, "eventgrid"),
    "eventgrid-rule-delete.json": ("rule-delete", "DenySSHInternet", "eventgrid"),
    "cloudevent-rule-write.json": ("rule-write", "AllowSSH", "cloudevents"),
}


@pytest.mark.parametrize("sample", sorted(SAMPLES))
def test_every_reference_sample(sample):
    kind, rule, schema = SAMPLES[sample]
    raw = reference(sample)
    for form in (raw, raw[0], json.dumps(raw[0]), json.dumps(raw[0]).encode()):
        change = parse_event(form)
        assert isinstance(change, NsgChange)
        assert (change.kind, change.rule_name, change.schema) == (kind, rule, schema)
        assert change.nsg_id == SAMPLE_NSG and change.resource_group == "rg-ml-gpu"
        assert change.subscription_id == "2c1e3d4f-0000-4000-8000-00000000a11c"
        assert change.correlation_id == "0f4b3a1e-0000-4000-8000-0000000000c1"
        assert change.actor.name == "ada.okafor@contoso.example" and change.actor.principal_type == "User"
        assert change.actor.object_id == "5e1f0b2a-0000-4000-8000-000000000001"
        assert change.event_time is not None and change.event_time.tzinfo is not None


def test_functions_and_sdk_event_objects():
    from azure.core.messaging import CloudEvent
    from azure.eventgrid import EventGridEvent

    assert parse_event(function_event("eventgrid-rule-write.json", SAMPLE_NSG, "AllowSSH")).kind == "rule-write"
    d = reference("eventgrid-nsg-write.json")[0]
    sdk = EventGridEvent(subject=d["subject"], event_type=d["eventType"], data=d["data"], data_version="2")
    assert parse_event(sdk).kind == "nsg-write"
    c = reference("cloudevent-rule-write.json")[0]
    ce = CloudEvent(source=c["source"], type=c["type"], data=c["data"], subject=c["subject"])
    assert parse_event(ce).schema == "cloudevents"


def test_actor_never_carries_claims_or_tokens():
    change = parse_event(reference("eventgrid-rule-write.json")[0])
    text = repr(change)
    assert "claims" not in text and "kR3vWm1" not in text and "203.0.113.45" not in text


def test_service_principal_and_managed_identity_actors():
    raw = copy.deepcopy(reference("eventgrid-rule-write.json")[0])
    claims = raw["data"]["claims"]
    for key in [k for k in claims if k.endswith(("/upn", "/name"))]:
        del claims[key]
    raw["data"]["authorization"]["evidence"]["principalType"] = "ServicePrincipal"
    actor = parse_event(raw).actor
    assert (actor.name, actor.principal_type) == ("c44b4083-3bb0-49c1-b47d-974e53cbdf3c", "ServicePrincipal")
    claims["xms_mirid"] = "/subscriptions/x/resourcegroups/y/providers/Microsoft.ManagedIdentity/identities/z"
    assert parse_event(raw).actor.principal_type == "ManagedIdentity"


def _mutated(fn):
    raw = copy.deepcopy(reference("eventgrid-rule-write.json")[0])
    fn(raw)
    return raw


@pytest.mark.parametrize(("event", "message"), [
    (_mutated(lambda e: e.pop("data")), "'data' must be an object"),
    (_mutated(lambda e: e.update(data=[])), "'data' must be an object"),
    (_mutated(lambda e: e.pop("id")), "has no 'id'"),
    (_mutated(lambda e: e["data"].pop("operationName")), "has no 'operationName'"),
    (_mutated(lambda e: e["data"].update(operationName=5)), "'operationName' must be a string"),
    (_mutated(lambda e: e["data"].update(resourceUri=42)), "'resourceUri' must be a string"),
    (_mutated(lambda e: e["data"].update(claims="x")), "'claims' and 'authorization' must be objects"),
    (_mutated(lambda e: e.update(eventTime="yesterday")), "not an ISO 8601 timestamp"),
    (_mutated(lambda e: e.update(unexpected=1)), r"unknown Event Grid field\(s\) \['unexpected'\]"),
    (_mutated(lambda e: e.update(eventType="Microsoft.Resources.ResourceDeleteSuccess")), "does not match operation"),
    (_mutated(lambda e: e["data"].update(resourceUri=SAMPLE_NSG)), "is not a security rule id"),
    (_mutated(lambda e: e["data"].update(resourceUri="/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/"
                                                     "virtualMachines/vm")), "is not a network security group"),
    ('{"id": "x", "eventType": "Microsoft.Resources.ResourceWriteSuccess", "data": {"operat', "not valid JSON"),
    ("[" + ",".join(['{"id": "a"}'] * 2) + "]", "batch of 2"),
    ("x" * (1024 * 1024 + 1), "over Event Grid's 1 MB limit"),
    (12, "not an event"),
])
def test_malformed_events_are_input_errors_with_a_reason(event, message):
    with pytest.raises(InputError, match=message):
        parse_event(event)


@pytest.mark.parametrize(("mutate", "reason"), [
    (lambda e: e.update(eventType="Microsoft.Resources.ResourceActionSuccess"), "not an ARM write/delete success"),
    (lambda e: e["data"].update(operationName="Microsoft.Compute/virtualMachines/write"), "does not change an NSG"),
    (lambda e: e["data"].update(status="Failed"), "status is Failed"),
])
def test_events_that_are_not_ours_are_ignored(mutate, reason):
    result = parse_event(_mutated(mutate))
    assert isinstance(result, Ignored) and reason in result.reason


def test_operation_names_are_case_insensitive():
    upper = "MICROSOFT.NETWORK/NETWORKSECURITYGROUPS/SECURITYRULES/WRITE"
    raw = _mutated(lambda e: e["data"].update(operationName=upper))
    assert parse_event(raw).kind == "rule-write"


@pytest.mark.parametrize(("rid", "rule", "expected"), [
    (SAMPLE_NSG + "/securityRules/r1", True, (SAMPLE_NSG, "r1")),
    (SAMPLE_NSG.lower() + "/SECURITYRULES/R1", True, (SAMPLE_NSG.lower(), "R1")),
    (SAMPLE_NSG, False, (SAMPLE_NSG, None)),
])
def test_rule_ids_map_to_their_nsg(rid, rule, expected):
    assert nsg_of(rid, rule=rule) == expected
