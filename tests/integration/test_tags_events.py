"""Issue 12.7: tags changed through the Tags API re-evaluate the NSG at once.

The stand-in models the Tags API (``{nsg}/providers/Microsoft.Resources/tags/default``) and raises the event
Azure raises for it (``Microsoft.Resources/tags/write``, resourceUri = the tags resource); the event goes
through the real function handler."""

from __future__ import annotations

import copy

import pytest
from azure.core.rest import HttpRequest

from shared.app.config import Settings
from shared.app.events import Ignored, NsgChange, parse_event
from shared.azure.credentials import arm_pipeline, make_credential
from tests.eventfactory import event_dict
from tests.integration.conftest import Guard, local_env
from tests.nsgfactory import nsg, nsg_id, rule

NSG = "web-nsg"
NSG_ID = nsg_id(NSG, "rg1")


def tags_api(guard: Guard, method: str, body: dict) -> dict:
    """What ``az tag update --operation Merge`` sends, through a real azure-core pipeline."""
    settings = Settings.from_env(local_env(guard.azure))
    client = arm_pipeline(settings, make_credential(settings))
    request = HttpRequest(method, f"{guard.azure.url}{NSG_ID}/providers/Microsoft.Resources/tags/default",
                          params={"api-version": "2021-04-01"}, json=body)
    response = client.send_request(request)
    assert response.status_code == 200, response.text()
    return response.json()


def test_owner_tag_changed_with_the_tags_api_re_evaluates_the_nsg(guard: Guard):
    guard.azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG, tags={"owner": "team-a"}))
    out = tags_api(guard, "PATCH", {"operation": "Merge", "properties": {"tags": {"owner": "team-b"}}})
    assert out["properties"]["tags"] == {"owner": "team-b"}
    (event,) = guard.azure.event_grid.drain()
    assert event["data"]["operationName"] == "Microsoft.Resources/tags/write"
    assert event["data"]["resourceUri"] == f"{NSG_ID}/providers/Microsoft.Resources/tags/default"
    guard.deliver(__import__("localazure.functions", fromlist=["eventgrid_event"]).eventgrid_event(event))
    (finding,) = guard.rows(RecordType="finding")
    assert finding["Owner"] == "team-b" and finding["Status"] == "Open"
    assert guard.azure.count("arm.get") == 1  # the event is only a pointer: the NSG is read


def test_exempt_tag_set_with_the_tags_api_is_recorded_at_once(guard: Guard):
    guard.azure.seed_nsg(nsg([rule("AllowSSH", 300, "22", "*", nsg=NSG)], name=NSG, tags={"owner": "team-a"}))
    tags_api(guard, "PUT", {"properties": {"tags": {"owner": "team-a", "nsg-guard-exempt": "not a valid value"}}})
    assert guard.deliver_published() == 1
    assert guard.rows(RecordType="evaluation"), "the tags event was not evaluated"


def _tags_event(resource_uri: str) -> dict:
    event = copy.deepcopy(event_dict("eventgrid-nsg-write.json", NSG_ID))
    event["data"]["operationName"] = "Microsoft.Resources/tags/write"
    event["data"]["resourceUri"] = event["subject"] = resource_uri
    return event


SUB_RG = "/subscriptions/2c1e3d4f-0000-4000-8000-00000000a11c/resourceGroups/rg1"


@pytest.mark.parametrize(("resource_uri", "expected"), [
    (f"{NSG_ID}/providers/Microsoft.Resources/tags/default", NSG_ID),
    (f"{NSG_ID}/PROVIDERS/microsoft.resources/TAGS/default", NSG_ID),
    (f"{SUB_RG}/providers/Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.Resources/tags/default",
     "ignored"),
    (f"{SUB_RG}/providers/Microsoft.Resources/tags/default", "ignored"),
    (f"{NSG_ID}/securityRules/r/providers/Microsoft.Resources/tags/default", "ignored"),
    (f"{NSG_ID}", "error"),
])
def test_tags_write_events_map_to_their_nsg(resource_uri, expected):
    event = _tags_event(resource_uri)
    if expected == "error":
        with pytest.raises(Exception, match="tags/default"):
            parse_event(event)
        return
    parsed = parse_event(event)
    if expected == "ignored":
        assert isinstance(parsed, Ignored) and "not an NSG" in parsed.reason
    else:
        assert isinstance(parsed, NsgChange) and parsed.nsg_id == expected and parsed.kind == "nsg-write"
        assert parsed.rule_name is None and parsed.operation == "Microsoft.Resources/tags/write"
