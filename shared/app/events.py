"""A typed, read-only view of the Event Grid events NSG Guard reacts to, in both delivery schemas.

Accepts what the Functions runtime hands us (``func.EventGridEvent``), raw dicts in the Event Grid or
CloudEvents 1.0 schema, and azure-eventgrid / azure-core event objects. The result is either an
:class:`NsgChange` (act on it), an :class:`Ignored` (well-formed, not ours: acknowledge and log), or an
:class:`InputError` (malformed: acknowledge and log the reason; retrying cannot fix it).

The event is only a pointer: handlers always re-read the NSG. Claims are reduced to who did it (UPN or
app id, object id, principal type); tokens and the rest of the claims are never kept or logged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.core.errors import InputError
from shared.core.model import split_resource_id

WRITE_SUCCESS = "microsoft.resources.resourcewritesuccess"
DELETE_SUCCESS = "microsoft.resources.resourcedeletesuccess"
OPERATIONS = {
    "microsoft.network/networksecuritygroups/write": "nsg-write",
    "microsoft.network/networksecuritygroups/delete": "nsg-delete",
    "microsoft.network/networksecuritygroups/securityrules/write": "rule-write",
    "microsoft.network/networksecuritygroups/securityrules/delete": "rule-delete",
}
# Tags changed through the Tags API (portal, `az tag update`): resourceUri is {nsg id}/providers/Microsoft.Resources/
# tags/default. Owner and exemption tags decide findings, so the NSG is re-evaluated like after an NSG write.
TAGS_WRITE = "microsoft.resources/tags/write"
TAGS_SUFFIX = "/providers/microsoft.resources/tags/default"
OPERATIONS[TAGS_WRITE] = "nsg-write"
MAX_EVENT_BYTES = 1024 * 1024  # Event Grid's own limit for one event
EVENTGRID_KEYS = frozenset({"id", "topic", "subject", "eventType", "eventTime", "data", "dataVersion",
                            "metadataVersion"})

_CLAIM_UPN = ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn", "upn")
_CLAIM_NAME = ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name", "unique_name")
_CLAIM_OID = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
_CLAIM_APPID = ("appid", "azp")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made the change: enough to route an alert, nothing that could be replayed."""

    name: str | None
    object_id: str | None
    principal_type: str | None
    app_id: str | None = None


@dataclass(frozen=True, slots=True)
class NsgChange:
    event_id: str
    event_type: str
    operation: str
    kind: str  # nsg-write | nsg-delete | rule-write | rule-delete
    resource_id: str
    nsg_id: str
    rule_name: str | None
    subscription_id: str
    resource_group: str
    event_time: datetime | None
    correlation_id: str | None
    actor: Actor
    schema: str  # eventgrid | cloudevents

    @property
    def nsg_deleted(self) -> bool:
        return self.kind == "nsg-delete"


@dataclass(frozen=True, slots=True)
class Ignored:
    event_id: str
    reason: str


def _envelope(obj: Any) -> tuple[dict[str, Any], str]:
    """Normalize any supported event object to (fields, schema)."""
    if isinstance(obj, (bytes, str)):
        if len(obj) > MAX_EVENT_BYTES:
            raise InputError(f"event is {len(obj)} bytes, over Event Grid's 1 MB limit")
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise InputError(f"event is not valid JSON: {exc.msg} at position {exc.pos}") from None
    if isinstance(obj, list):
        if len(obj) != 1:
            raise InputError(f"expected one event, got a batch of {len(obj)}; deliver events one at a time")
        obj = obj[0]
    if isinstance(obj, Mapping):
        if "specversion" in obj:
            return dict(obj), "cloudevents"
        unknown = set(obj) - EVENTGRID_KEYS
        if unknown:
            raise InputError(f"unknown Event Grid field(s) {sorted(unknown)}")
        return {"id": obj.get("id"), "type": obj.get("eventType"), "subject": obj.get("subject"),
                "time": obj.get("eventTime"), "data": obj.get("data"), "source": obj.get("topic")}, "eventgrid"
    # azure.functions.EventGridEvent (get_json), azure.eventgrid.EventGridEvent (.data, .event_type)
    if hasattr(obj, "event_type"):
        data = obj.get_json() if hasattr(obj, "get_json") else getattr(obj, "data", None)
        event_id = getattr(obj, "id", None)  # azure-eventgrid generates a uuid.UUID
        return {"id": None if event_id is None else str(event_id), "type": obj.event_type,
                "subject": getattr(obj, "subject", None),
                "time": getattr(obj, "event_time", None), "data": data,
                "source": getattr(obj, "topic", None)}, "eventgrid"
    # azure.core.messaging.CloudEvent
    if hasattr(obj, "specversion") and hasattr(obj, "type"):
        return {"id": str(obj.id), "type": obj.type, "subject": obj.subject, "time": obj.time, "data": obj.data,
                "source": obj.source}, "cloudevents"
    raise InputError(f"not an event: {type(obj).__name__}")


def _str_field(data: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise InputError(f"event {where} has no {key!r}")
        return None
    if not isinstance(value, str):
        raise InputError(f"event {where} field {key!r} must be a string, got {type(value).__name__}")
    return value


def _claim(claims: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    for key in keys:
        value = claims.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _actor(data: Mapping[str, Any]) -> Actor:
    claims = data.get("claims") or {}
    auth = data.get("authorization") or {}
    if not isinstance(claims, Mapping) or not isinstance(auth, Mapping):
        raise InputError("event data fields 'claims' and 'authorization' must be objects")
    evidence = auth.get("evidence") or {}
    evidence = evidence if isinstance(evidence, Mapping) else {}
    upn = _claim(claims, _CLAIM_UPN)
    name = upn or (lambda n: n if n and "@" in n else None)(_claim(claims, _CLAIM_NAME))
    app_id = _claim(claims, _CLAIM_APPID)
    object_id = _claim(claims, _CLAIM_OID) or (evidence.get("principalId") or None)
    principal_type = evidence.get("principalType") if isinstance(evidence.get("principalType"), str) else None
    if "xms_mirid" in claims:
        principal_type = "ManagedIdentity"
    elif principal_type is None:
        principal_type = "User" if name else ("ServicePrincipal" if app_id else None)
    return Actor(name=name or app_id or object_id, object_id=object_id, principal_type=principal_type,
                 app_id=app_id)


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise InputError(f"event time must be a string, got {type(value).__name__}")
    text = value.strip().replace("Z", "+00:00")
    # Azure writes 7 fractional digits; Python accepts at most 6.
    if "." in text:
        head, _, rest = text.partition(".")
        n = 0
        while n < len(rest) and rest[n].isdigit():
            n += 1
        text = f"{head}.{rest[:min(n, 6)]}{rest[n:]}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"event time {value!r} is not an ISO 8601 timestamp") from None


def parse_event(obj: Any) -> NsgChange | Ignored:
    """Classify one delivered event; raise :class:`InputError` when it is malformed."""
    env, schema = _envelope(obj)
    event_id = env.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise InputError("event has no 'id'")
    try:
        event_type = _str_field(env, "type", "envelope")
        assert event_type is not None
        if event_type.lower() not in (WRITE_SUCCESS, DELETE_SUCCESS):
            return Ignored(event_id, f"event type {event_type} is not an ARM write/delete success")
        data = env.get("data")
        if isinstance(data, (str, bytes)):
            if len(data) > MAX_EVENT_BYTES:
                raise InputError("event data is over Event Grid's 1 MB limit")
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise InputError(f"event data is not valid JSON: {exc.msg}") from None
        if not isinstance(data, Mapping):
            raise InputError(f"event 'data' must be an object, got {type(data).__name__}")
        operation = _str_field(data, "operationName", "data")
        assert operation is not None
        kind = OPERATIONS.get(operation.lower())
        if kind is None:
            return Ignored(event_id, f"operation {operation} does not change an NSG")
        status = _str_field(data, "status", "data", required=False)
        if status is not None and status.lower() != "succeeded":
            return Ignored(event_id, f"operation status is {status}, not Succeeded")
        if (event_type.lower() == DELETE_SUCCESS) != kind.endswith("delete"):
            raise InputError(f"event type {event_type} does not match operation {operation}")
        resource_id = _str_field(data, "resourceUri", "data", required=False) or env.get("subject")
        if not isinstance(resource_id, str) or not resource_id:
            raise InputError("event has neither data.resourceUri nor a subject")
        if operation.lower() == TAGS_WRITE:
            resource_id = tagged_resource(resource_id)
            if not is_nsg_id(resource_id):
                return Ignored(event_id, f"tags changed on {resource_id}, which is not an NSG")
        nsg_id, rule_name = nsg_of(resource_id, rule=kind.startswith("rule"))
        parts = split_resource_id(nsg_id)
        correlation_id = _str_field(data, "correlationId", "data", required=False)
        return NsgChange(
            event_id=event_id, event_type=event_type, operation=operation, kind=kind,
            resource_id=resource_id, nsg_id=nsg_id, rule_name=rule_name,
            subscription_id=parts.get("subscriptions", ""), resource_group=parts.get("resourcegroups", ""),
            event_time=_parse_time(env.get("time")), correlation_id=correlation_id, actor=_actor(data),
            schema=schema,
        )
    except InputError as exc:
        raise InputError(f"event {event_id}: {exc.reason}") from None


def nsg_of(resource_id: str, *, rule: bool) -> tuple[str, str | None]:
    """``.../networkSecurityGroups/nsg/securityRules/r`` -> (``.../networkSecurityGroups/nsg``, ``r``)."""
    parts = resource_id.strip("/").split("/")
    lowered = [p.lower() for p in parts]
    try:
        at = lowered.index("networksecuritygroups")
    except ValueError:
        raise InputError(f"resource {resource_id!r} is not a network security group") from None
    ok = (len(parts) >= 8 and lowered[0] == "subscriptions" and lowered[2] == "resourcegroups"
          and lowered[4] == "providers" and lowered[5] == "microsoft.network" and at == 6)
    expected = at + 4 if rule else at + 2
    if not ok or len(parts) != expected or (rule and lowered[at + 2] != "securityrules"):
        what = "security rule" if rule else "network security group"
        raise InputError(f"resource {resource_id!r} is not a {what} id")
    nsg_id = "/" + "/".join(parts[: at + 2])
    return nsg_id, parts[at + 3] if rule else None


def tagged_resource(resource_id: str) -> str:
    """``{id}/providers/Microsoft.Resources/tags/default`` -> ``{id}``; a Tags API event must name one."""
    if not resource_id.lower().endswith(TAGS_SUFFIX):
        raise InputError(f"tags event resource {resource_id!r} does not end in "
                         "/providers/Microsoft.Resources/tags/default")
    return resource_id[: -len(TAGS_SUFFIX)]


def is_nsg_id(resource_id: str) -> bool:
    try:
        nsg_of(resource_id, rule=False)
    except InputError:
        return False
    return True


# --- Azure ML computes (the ML lens): a compute write/delete is a pointer to re-read the compute ---------
COMPUTE_OPERATIONS = {
    "microsoft.machinelearningservices/workspaces/computes/write": "compute-write",
    "microsoft.machinelearningservices/workspaces/computes/delete": "compute-delete",
}


@dataclass(frozen=True, slots=True)
class ComputeChange:
    event_id: str
    event_type: str
    operation: str
    kind: str  # compute-write | compute-delete
    compute_id: str
    subscription_id: str
    event_time: datetime | None
    correlation_id: str | None
    actor: Actor
    schema: str

    @property
    def deleted(self) -> bool:
        return self.kind == "compute-delete"


def parse_compute_event(obj: Any) -> ComputeChange | None:
    """A compute write/delete event, or None when the event is about something else (or unreadable: then
    :func:`parse_event` classifies it). Raises :class:`InputError` for a malformed compute event."""
    try:
        env, schema = _envelope(obj)
    except InputError:
        return None
    data = env.get("data")
    if isinstance(data, (str, bytes)) and len(data) <= MAX_EVENT_BYTES:
        try:
            data = json.loads(data)
        except json.JSONDecodeError:
            return None
    operation = data.get("operationName") if isinstance(data, Mapping) else None
    kind = COMPUTE_OPERATIONS.get(operation.lower()) if isinstance(operation, str) else None
    event_id, event_type = env.get("id"), env.get("type")
    if kind is None or not isinstance(event_id, str) or not event_id or not isinstance(event_type, str):
        return None
    assert isinstance(data, Mapping) and isinstance(operation, str)
    try:
        if event_type.lower() not in (WRITE_SUCCESS, DELETE_SUCCESS):
            return None
        if (event_type.lower() == DELETE_SUCCESS) != kind.endswith("delete"):
            raise InputError(f"event type {event_type} does not match operation {operation}")
        status = _str_field(data, "status", "data", required=False)
        if status is not None and status.lower() != "succeeded":
            return None
        resource_id = _str_field(data, "resourceUri", "data", required=False) or env.get("subject")
        if not isinstance(resource_id, str) or not resource_id:
            raise InputError("event has neither data.resourceUri nor a subject")
        from shared.core.aml import workspace_of

        workspace_of(resource_id)  # validates the id shape
        return ComputeChange(
            event_id=event_id, event_type=event_type, operation=operation, kind=kind, compute_id=resource_id,
            subscription_id=split_resource_id(resource_id).get("subscriptions", ""),
            event_time=_parse_time(env.get("time")),
            correlation_id=_str_field(data, "correlationId", "data", required=False), actor=_actor(data),
            schema=schema)
    except InputError as exc:
        raise InputError(f"event {event_id}: {exc.reason}") from None
