"""Events in the exact shapes of tests/fixtures/azure-reference, pointed at the resources a test uses."""

from __future__ import annotations

import copy
import json
import uuid
from typing import Any

from localazure.functions import eventgrid_event
from tests.nsgfactory import reference

SAMPLE_NSG = ("/subscriptions/2c1e3d4f-0000-4000-8000-00000000a11c/resourceGroups/rg-ml-gpu/providers/"
              "Microsoft.Network/networkSecurityGroups/ci-gpu-01-nsg")


def event_dict(sample: str, nsg_id: str, rule: str | None = None, *, event_id: str | None = None,
               upn: str | None = None) -> dict[str, Any]:
    """The sample event (Event Grid or CloudEvents schema) rewritten to point at ``nsg_id``/``rule``."""
    raw = copy.deepcopy(reference(sample)[0])
    text = json.dumps(raw)
    original_rule = raw["data"]["resourceUri"].rsplit("/", 1)[-1] if "/securityRules/" in raw["data"]["resourceUri"] \
        else None
    if original_rule and rule:
        text = text.replace(f"{SAMPLE_NSG}/securityRules/{original_rule}", f"{nsg_id}/securityRules/{rule}")
    text = text.replace(SAMPLE_NSG, nsg_id)
    if upn:
        text = text.replace("ada.okafor@contoso.example", upn)
    out = json.loads(text)
    out["id"] = event_id or str(uuid.uuid4())
    return out


def function_event(sample: str, nsg_id: str, rule: str | None = None, **kw: Any) -> Any:
    """A real ``azure.functions.EventGridEvent``, as the Functions worker builds it (Event Grid schema)."""
    return eventgrid_event(event_dict(sample, nsg_id, rule, **kw))
