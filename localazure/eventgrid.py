"""Event Grid for the stand-ins: every successful NSG / security rule write or delete publishes the event
Azure would publish on the subscription's system topic (``Microsoft.Resources.ResourceWriteSuccess`` /
``ResourceDeleteSuccess``), in the Event Grid schema of ``shared/azure-reference/eventgrid-*.json``.

Events queue up in :class:`EventGridTopic`; the demo and tests drain them and deliver each to the Function,
the way an Event Grid subscription would (at least once, in order here; redelivery is up to the caller).
The caller's identity comes from the bearer token: register principals with :meth:`add_principal`.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class Principal:
    upn: str | None
    object_id: str
    principal_type: str = "User"  # User | ServicePrincipal
    app_id: str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # the Azure CLI's public client id
    name: str | None = None
    ip: str = "203.0.113.45"


LOCAL_DEVELOPER = Principal(upn="developer@localazure.example", object_id="00000000-0000-4000-8000-00000000d3v0",
                            name="Local Developer")


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


class EventGridTopic:
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self._lock = threading.Lock()
        self._pending: list[dict[str, Any]] = []
        self.published: list[dict[str, Any]] = []

    def publish(self, *, resource_id: str, subscription: str, operation: str, delete: bool, method: str,
                url: str, principal: Principal) -> dict[str, Any]:
        now = _now()
        claims: dict[str, Any] = {
            "aud": "https://management.core.windows.net/",
            "iss": f"https://sts.windows.net/{self.tenant_id}/",
            "appid": principal.app_id,
            "http://schemas.microsoft.com/identity/claims/objectidentifier": principal.object_id,
            "http://schemas.microsoft.com/identity/claims/tenantid": self.tenant_id,
            "ipaddr": principal.ip,
            "ver": "1.0",
        }
        if principal.upn:
            claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] = principal.upn
            claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"] = principal.upn
        if principal.name:
            claims["name"] = principal.name
        data: dict[str, Any] = {
            "authorization": {
                "scope": resource_id,
                "action": operation,
                "evidence": {"role": "Contributor", "roleAssignmentScope": f"/subscriptions/{subscription}",
                             "roleAssignmentId": uuid.uuid4().hex,
                             "roleDefinitionId": "b24988ac618042a0ab8820f7382dd24c",
                             "principalId": principal.object_id.replace("-", ""),
                             "principalType": principal.principal_type},
            },
            "claims": claims,
            "correlationId": str(uuid.uuid4()),
            "resourceProvider": "Microsoft.Network",
            "resourceUri": resource_id,
            "operationName": operation,
            "status": "Succeeded",
            "subscriptionId": subscription,
            "tenantId": self.tenant_id,
            "httpRequest": {"clientRequestId": str(uuid.uuid4()), "clientIpAddress": principal.ip,
                            "method": method, "url": url},
        }
        event = {
            "subject": resource_id,
            "eventType": "Microsoft.Resources.ResourceDeleteSuccess" if delete
            else "Microsoft.Resources.ResourceWriteSuccess",
            "eventTime": now,
            "id": str(uuid.uuid4()),
            "data": data,
            "dataVersion": "2",
            "metadataVersion": "1",
            "topic": f"/subscriptions/{subscription}",
        }
        with self._lock:
            self._pending.append(event)
            self.published.append(event)
        return event

    def drain(self) -> list[dict[str, Any]]:
        """Events published since the last drain, oldest first."""
        with self._lock:
            out, self._pending = self._pending, []
        return out


def deliver_with_timeout(event: dict[str, Any], handler: Any, *, timeout_s: float = 30.0,
                         max_attempts: int = 3, backoff_s: float = 0.0) -> dict[str, int]:
    """Push one event the way Event Grid does: an attempt that does not answer within ``timeout_s`` (30 s in
    Azure) counts as failed and the event is delivered again *while the first attempt keeps running*; an
    attempt that raises is retried too. Returns counts (``attempts``, ``timeouts``, ``errors``, ``ok``)."""
    import time

    stats = {"attempts": 0, "timeouts": 0, "errors": 0, "ok": 0}
    lock = threading.Lock()
    running: list[threading.Thread] = []
    for _ in range(max_attempts):
        result: dict[str, Any] = {}

        def attempt(result: dict[str, Any] = result) -> None:
            try:
                handler(event)
                result["ok"] = True
            except Exception as exc:
                result["error"] = exc

        t = threading.Thread(target=attempt, daemon=True)
        with lock:
            stats["attempts"] += 1
        t.start()
        running.append(t)
        t.join(timeout_s)
        if t.is_alive():
            stats["timeouts"] += 1
        elif "error" in result:
            stats["errors"] += 1
        else:
            stats["ok"] += 1
            break
        time.sleep(backoff_s)
    for t in running:
        t.join()
    return stats
