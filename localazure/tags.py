"""The Tags API on an NSG: ``{nsg id}/providers/Microsoft.Resources/tags/default`` (GET, PUT, PATCH).

What the portal and ``az tag update`` use. Like Azure, a write raises ``ResourceWriteSuccess`` with
``operationName`` ``Microsoft.Resources/tags/write`` and the tags resource as ``resourceUri`` (not the NSG's
id), which an NSG-only event filter never sees.
"""

from __future__ import annotations

from typing import Any

from .arm import key_of, nsg_id
from .validation import ArmError

API = "Microsoft.Resources/tags"


def route(parts: list[str], low: list[str]) -> dict[str, str] | None:
    """Route params of an NSG's tags resource path, or None."""
    if (len(parts) == 12 and low[0] == "subscriptions" and low[2] == "resourcegroups" and low[4] == "providers"
            and low[5] == "microsoft.network" and low[6] == "networksecuritygroups"
            and low[8:] == ["providers", "microsoft.resources", "tags", "default"]):
        return {"sub": parts[1], "rg": parts[3], "name": parts[7]}
    return None


def _body(resource_id: str, tags: dict[str, str]) -> dict[str, Any]:
    return {"id": f"{resource_id}/providers/{API}/default", "name": "default", "type": API,
            "properties": {"tags": tags}}


def handle(azure: Any, h: Any, r: Any, query: dict[str, str], body: bytes) -> tuple[int, Any, dict]:
    azure._api_version(query)
    p = r.params
    resource_id = nsg_id(p["sub"], p["rg"], p["name"])
    with azure.network.lock:
        if azure.network.get(key_of(resource_id)) is None:
            raise ArmError(404, "ResourceNotFound", f"The Resource '{resource_id}' was not found.")
    current = dict((azure.get_nsg(resource_id) or {}).get("tags") or {})
    if h.command == "GET":
        return 200, _body(resource_id, current), {}
    data = azure._json(body) or {}
    new = (data.get("properties") or {}).get("tags")
    if not isinstance(new, dict):
        raise ArmError(400, "InvalidRequestContent", "properties.tags must be an object.")
    if h.command == "PATCH":
        op = str(data.get("operation", "")).lower()
        if op == "merge":
            new = {**current, **new}
        elif op == "delete":
            new = {k: v for k, v in current.items() if k not in new or new[k] != v}
        elif op != "replace":
            raise ArmError(400, "InvalidRequestContent", "operation must be Merge, Replace or Delete.")
    elif h.command != "PUT":
        raise ArmError(405, "MethodNotAllowed", f"The requested method {h.command} is not allowed.")

    def set_tags(nsg: dict[str, Any]) -> None:
        nsg["tags"] = new

    azure.network.mutate(resource_id, set_tags)
    principal = azure.principal_for(h.headers.get("Authorization", ""))
    if principal is not None:
        tags_id = f"{resource_id}/providers/{API}/default"
        event = azure.event_grid.publish(resource_id=tags_id, subscription=p["sub"],
                                         operation=f"{API}/write", delete=False, method=h.command,
                                         url=f"https://management.azure.com{h.path}", principal=principal)
        event["data"]["resourceProvider"] = "Microsoft.Resources"
    return 200, _body(resource_id, new), {}
