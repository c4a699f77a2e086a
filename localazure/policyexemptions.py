"""Azure Policy exemptions stand-in: ``Microsoft.Authorization/policyExemptions`` at any scope.

- ``PUT {scope}/providers/Microsoft.Authorization/policyExemptions/{name}`` (201 created / 200 updated), ``GET``
  one, ``DELETE``; ``GET {scope}/providers/Microsoft.Authorization/policyExemptions`` lists, with ``$filter``
  ``atScope()`` (the scope and the scopes above it), ``atExactScope()`` or ``excludeExpired()``.
- Only the preview api-versions accept ``expiresOn``/``metadata`` the way NSG Guard uses them; others are a
  400 ``InvalidApiVersionParameter`` like ARM's.
- PUT checks the caller's rights as Azure RBAC would: ``Microsoft.Authorization/policyExemptions/write`` on
  the scope and ``Microsoft.Authorization/policyAssignments/exempt/action`` on the assignment, else 403
  ``AuthorizationFailed``. Grant them with :meth:`PolicyExemptionStore.grant` (object id of a principal).
- ``systemData`` (createdBy/createdAt/...) is filled from the caller, like ARM.
- Resource Graph: ``policyresources`` rows for queries that mention ``microsoft.authorization/policyexemptions``
  (no ``systemData``: Resource Graph rows are not guaranteed to carry it).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from .validation import ArmError

API_VERSIONS = ("2022-07-01-preview", "2024-12-01-preview", "2025-03-01")
WRITE = "Microsoft.Authorization/policyExemptions/write"
EXEMPT = "Microsoft.Authorization/policyAssignments/exempt/action"
TYPE = "Microsoft.Authorization/policyExemptions"
GRAPH_TABLE = "policyexemption"
_MARKER = ["providers", "microsoft.authorization", "policyexemptions"]


def route(method: str, parts: list[str]) -> tuple[str, str, dict[str, str]] | None:
    """(kind, resource, params) for exemption URLs at any scope, or None."""
    low = [p.lower() for p in parts]
    for i in range(len(low) - 2):
        if low[i:i + 3] == _MARKER:
            scope = "/" + "/".join(parts[:i])
            rest = parts[i + 3:]
            if not rest:
                return "policyexemption", "policyexemptions", {"scope": scope}
            if len(rest) == 1:
                return "policyexemption", "policyexemption", {"scope": scope, "exemption": rest[0]}
            return None
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def _above_or_at(scope: str, resource: str) -> bool:
    s, r = scope.rstrip("/").lower(), resource.rstrip("/").lower()
    return r == s or r.startswith(s + "/")


class PolicyExemptionStore:
    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.lock = threading.Lock()
        self.items: dict[str, dict[str, Any]] = {}  # lower-cased id -> ARM body
        self.rights: dict[str, set[str]] = {}  # object id -> actions

    # --- test helpers ---
    def grant(self, object_id: str, *actions: str) -> None:
        """Give a principal the actions (default: both that creating an exemption needs)."""
        with self.lock:
            self.rights.setdefault(object_id.lower(), set()).update(actions or (WRITE, EXEMPT))

    def seed(self, scope: str, name: str, properties: dict[str, Any], *, created_by: str = "secops@contoso.example",
             created_at: str | None = None) -> dict[str, Any]:
        """Store an exemption as if someone had created it (no permission check)."""
        body = self._body(scope, name, properties, created_by, "User", created_at or _now())
        with self.lock:
            self.items[body["id"].lower()] = body
        return copy.deepcopy(body)

    def update(self, exemption_id: str, **properties: Any) -> None:
        with self.lock:
            self.items[exemption_id.lower()]["properties"].update(properties)

    def all(self) -> list[dict[str, Any]]:
        with self.lock:
            return [copy.deepcopy(b) for b in self.items.values()]

    def graph_rows(self) -> list[dict[str, Any]]:
        """Resource Graph ``policyresources`` rows (no systemData)."""
        rows = []
        for body in self.all():
            body.pop("systemData", None)
            rows.append(body)
        return rows

    # --- wire ---
    def _body(self, scope: str, name: str, props: dict[str, Any], who: str, who_type: str, at: str
              ) -> dict[str, Any]:
        return {"id": f"{scope.rstrip('/')}/providers/{TYPE}/{name}", "name": name, "type": TYPE,
                "properties": copy.deepcopy(props),
                "systemData": {"createdBy": who, "createdByType": who_type, "createdAt": at,
                               "lastModifiedBy": who, "lastModifiedByType": who_type, "lastModifiedAt": at}}

    def handle(self, method: str, params: dict[str, str], query: dict[str, str], body: Any, principal: Any,
               base_url: str, path: str) -> tuple[int, Any, dict[str, str]]:
        api = query.get("api-version")
        if not api:
            raise ArmError(400, "MissingApiVersionParameter",
                           "The api-version query parameter (?api-version=) is required for all requests.")
        if api not in API_VERSIONS:
            raise ArmError(400, "InvalidApiVersionParameter",
                           f"The api-version '{api}' is invalid. The supported versions are "
                           f"'{', '.join(API_VERSIONS)}'.")
        scope = params["scope"]
        if "exemption" not in params:
            if method != "GET":
                raise ArmError(405, "MethodNotAllowed", f"The requested method {method} is not allowed.")
            return 200, {"value": self._list(scope, query.get("$filter", ""))}, {}
        eid = f"{scope.rstrip('/')}/providers/{TYPE}/{params['exemption']}"
        if method == "GET":
            with self.lock:
                found = self.items.get(eid.lower())
            if found is None:
                raise ArmError(404, "PolicyExemptionNotFound", f"The policy exemption '{params['exemption']}' "
                               "is not found.")
            return 200, copy.deepcopy(found), {}
        if method == "DELETE":
            self._authorize(principal, scope, None, "Microsoft.Authorization/policyExemptions/delete")
            with self.lock:
                gone = self.items.pop(eid.lower(), None)
            return (200 if gone else 204), None, {}
        if method != "PUT":
            raise ArmError(405, "MethodNotAllowed", f"The requested method {method} is not allowed.")
        props = body.get("properties") if isinstance(body, dict) else None
        if not isinstance(props, dict) or not isinstance(props.get("policyAssignmentId"), str):
            raise ArmError(400, "InvalidRequestContent",
                           "The request content was invalid: 'properties.policyAssignmentId' is required.")
        if str(props.get("exemptionCategory", "")).lower() not in ("waiver", "mitigated"):
            raise ArmError(400, "InvalidRequestContent", "The exemption category must be Waiver or Mitigated.")
        if props.get("expiresOn") is not None and (not isinstance(props["expiresOn"], str)
                                                   or _parse_time(props["expiresOn"]) is None):
            raise ArmError(400, "InvalidRequestContent", "The expiresOn value is not a valid date-time.")
        self._authorize(principal, scope, props["policyAssignmentId"])
        who = principal.upn or principal.object_id
        who_type = "User" if principal.upn else "Application"
        with self.lock:
            existing = self.items.get(eid.lower())
            created_at = existing["systemData"]["createdAt"] if existing else _now()
            created_by = existing["systemData"]["createdBy"] if existing else who
            stored = self._body(scope, params["exemption"], props, created_by, who_type, created_at)
            stored["systemData"].update(lastModifiedBy=who, lastModifiedAt=_now())
            self.items[eid.lower()] = stored
        return (200 if existing else 201), copy.deepcopy(stored), {}

    def _authorize(self, principal: Any, scope: str, assignment: str | None, action: str = WRITE) -> None:
        have = self.rights.get(principal.object_id.lower(), set()) if principal is not None else set()
        for needed, over in ((action, scope), (EXEMPT, assignment)):
            if over is not None and needed not in have:
                who = principal.upn or principal.object_id if principal is not None else "unknown"
                raise ArmError(403, "AuthorizationFailed",
                               f"The client '{who}' with object id '{getattr(principal, 'object_id', '')}' does "
                               f"not have authorization to perform action '{needed}' over scope '{over}' or "
                               "the scope is invalid. If access was recently granted, please refresh your "
                               "credentials.")

    def _list(self, scope: str, flt: str) -> list[dict[str, Any]]:
        flt = flt.replace(" ", "").lower()
        now = datetime.now(UTC)
        out = []
        for body in self.all():
            own = body["id"][: body["id"].lower().rfind("/providers/microsoft.authorization/")]
            if "atexactscope()" in flt:
                keep = own.rstrip("/").lower() == scope.rstrip("/").lower()
            elif "atscope()" in flt:
                keep = _above_or_at(own, scope)  # at the scope or above it (inherited)
            else:
                keep = _above_or_at(own, scope) or _above_or_at(scope, own)
            if keep and "excludeexpired()" in flt:
                expires = body["properties"].get("expiresOn")
                keep = expires is None or (_parse_time(expires) or now) > now
            if keep:
                out.append(body)
        return out


def install(azure: Any) -> PolicyExemptionStore:
    """Attach the store to a LocalAzure: the ARM handler and the ``policyresources`` Resource Graph table."""
    store = PolicyExemptionStore(azure.tenant_id)
    azure.graph.providers[GRAPH_TABLE] = store.graph_rows
    azure.graph.add_selector(lambda q: GRAPH_TABLE if "microsoft.authorization/policyexemptions" in q.lower()
                             else None)
    return store


def handler(azure: Any) -> Callable[..., tuple[int, Any, dict[str, str]]]:
    """The ``_h_policyexemption`` route handler bound to ``azure``."""

    def _h(h: Any, r: Any, query: dict[str, str], body: bytes) -> tuple[int, Any, dict[str, str]]:
        principal = azure.principal_for(h.headers.get("Authorization", ""))
        data = azure._json(body) if h.command == "PUT" else None
        return azure.policy_exemptions.handle(h.command, r.params, query, data, principal, h.base_url(),
                                              quote(h.path))

    return _h
