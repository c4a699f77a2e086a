"""The stand-ins publish the Event Grid events Azure would, in the reference shape, naming the caller."""

from __future__ import annotations

import json
from pathlib import Path

from localazure.eventgrid import Principal
from localazure.testing import nsg_body, rule_body
from shared.app.events import parse_event

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "azure-reference"
ADA = Principal(upn="ada.okafor@contoso.example", object_id="5e1f0b2a-0000-4000-8000-000000000001",
                name="Ada Okafor")


def shape(value):
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items() if k != "claims"}
    return type(value).__name__


def test_rule_write_and_delete_events_match_the_reference(local_azure):
    local_azure.seed_nsg(nsg_body("sub1", "rg1", "nsg1"))
    cred = local_azure.add_principal("ada-token", ADA)
    client = local_azure.network_client("sub1", credential=cred)
    client.security_rules.begin_create_or_update("rg1", "nsg1", "AllowSSH", {"properties": rule_body()}).result()
    client.security_rules.begin_delete("rg1", "nsg1", "AllowSSH").result()
    write, delete = local_azure.event_grid.drain()
    assert local_azure.event_grid.drain() == []

    for event, sample in ((write, "eventgrid-rule-write.json"), (delete, "eventgrid-rule-delete.json")):
        ref = json.loads((REFERENCE / sample).read_text())[0]
        assert shape(event) == shape(ref)
        assert set(event["data"]["claims"]) <= set(ref["data"]["claims"])
        change = parse_event(event)
        assert change.actor.name == "ada.okafor@contoso.example" and change.actor.principal_type == "User"
        assert change.rule_name == "AllowSSH" and change.nsg_id.endswith("/networkSecurityGroups/nsg1")
    assert parse_event(write).kind == "rule-write" and parse_event(delete).kind == "rule-delete"


def test_nsg_write_event_and_no_event_for_reads_or_failed_writes(local_azure):
    client = local_azure.network_client("sub1")
    client.network_security_groups.begin_create_or_update("rg1", "nsg2", {"location": "westeurope"}).result()
    client.network_security_groups.get("rg1", "nsg2")
    local_azure.faults.add("arm.put", status=500, times=1)  # the SDK retries the 500, then succeeds
    client.security_rules.begin_create_or_update("rg1", "nsg2", "r", {"properties": rule_body()}).result()
    assert local_azure.count("arm.put", status=500) == 1
    events = local_azure.event_grid.drain()
    assert [parse_event(e).kind for e in events] == ["nsg-write", "rule-write"]
    assert parse_event(events[0]).actor.name == "developer@localazure.example"


def test_unknown_tokens_are_still_rejected(local_azure):
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    from localazure.auth import StaticTokenCredential

    client = local_azure.network_client("sub1", credential=StaticTokenCredential("stolen"))
    try:
        client.network_security_groups.get("rg1", "nsg2")
    except (ClientAuthenticationError, HttpResponseError) as exc:
        assert exc.status_code == 401
    else:
        raise AssertionError("a wrong token was accepted")
