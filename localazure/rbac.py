"""Azure RBAC and token audiences for the stand-ins: what ARM checks before it runs a request.

* **Audience.** A token names the resource it was issued for. Local tokens carry it as ``<token>|<audience>``
  (``shared.azure.credentials.LocalTokenCredential`` builds them from the scope the SDK asked for); a token
  for the wrong audience is refused with 401 ``InvalidAuthenticationTokenAudience`` like ARM does. A plain
  token (no audience) is accepted unless ``strict_audience`` is set.
* **Authorization.** By default every principal may do everything. :meth:`Rbac.restrict` gives one token a
  fixed action list (e.g. the custom role's, read from ``infra/role/actions.json`` by :func:`role_actions`,
  the file ``infra/modules/role.bicep`` loads): any request outside it is refused with 403
  ``AuthorizationFailed`` and Azure's message, including long-running poll URLs. ``delay_s`` models RBAC
  propagation: until it has passed the principal is refused everything.

The action of a request is derived from its path like ARM does: the last ``providers/<namespace>`` segment,
the resource types after it, and ``read``/``write``/``delete``/``action`` from the method.
"""

from __future__ import annotations

import fnmatch
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .validation import ArmError

ROLE_FILE = Path(__file__).resolve().parents[1] / "infra" / "role" / "actions.json"
ASG_JOIN = "Microsoft.Network/applicationSecurityGroups/joinNetworkSecurityRule/action"
GRAPH_READ = "Microsoft.ResourceGraph/resources/read"
DEFAULT_AUDIENCES = {"arm": "https://management.azure.com", "ingest": "https://monitor.azure.com"}


def role_actions(enforce: bool = True, path: Path = ROLE_FILE) -> tuple[str, ...]:
    """The custom role's actions, from the same JSON file the Bicep loads."""
    doc = json.loads(path.read_text())
    return tuple(doc["read"]) + (tuple(doc["enforce"]) if enforce else ())


def split_token(token: str) -> tuple[str, str | None]:
    """``"tok|https://management.azure.com"`` -> (``"tok"``, audience); a plain token has no audience."""
    base, sep, audience = token.partition("|")
    return base, (audience.rstrip("/") if sep else None)


def _asg_refs(body: Any) -> bool:
    if not isinstance(body, dict):
        return False
    props = body.get("properties") if isinstance(body.get("properties"), dict) else {}
    rules = [props, *[r.get("properties") or {} for r in props.get("securityRules") or [] if isinstance(r, dict)]]
    return any(isinstance(r, dict) and (r.get("sourceApplicationSecurityGroups")
                                        or r.get("destinationApplicationSecurityGroups")) for r in rules)


def required_actions(method: str, path: str, body: Any = None) -> tuple[list[str], str]:
    """(actions, scope) a request needs; no actions for data-plane paths (ingestion, blobs)."""
    parts = [p for p in path.split("/") if p]
    low = [p.lower() for p in parts]
    if not parts or low[0] not in ("subscriptions", "providers"):
        return [], ""
    if low[:3] == ["providers", "microsoft.resourcegraph", "resources"]:
        return [GRAPH_READ], "/"
    verb = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}.get(
        method.upper(), "action")
    if "providers" in low:
        at = len(low) - 1 - low[::-1].index("providers")
        namespace, rest = parts[at + 1] if at + 1 < len(parts) else "", parts[at + 2:]
    else:  # /subscriptions/{s}[/resourceGroups/{rg}]
        namespace, rest = "Microsoft.Resources", parts
    types = rest[0::2]
    if len(rest) % 2 == 1 and verb != "read":  # POST .../{type}/{name}/{action}
        verb = "action"
    elif len(rest) % 2 == 1:
        verb = "read"  # a collection GET
    action = "/".join([namespace, *types, verb])
    actions = [action]
    if verb == "write" and low[-2:-1] in (["securityrules"], ["networksecuritygroups"]) and _asg_refs(body):
        actions.append(ASG_JOIN)
    scope = "/" + "/".join(parts[: len(parts) - (len(rest) % 2)])
    return actions, scope


def allows(granted: tuple[str, ...], action: str) -> bool:
    return any(fnmatch.fnmatchcase(action.lower(), g.lower()) for g in granted)


@dataclass
class Grant:
    actions: tuple[str, ...]
    object_id: str
    effective_at: float


class Rbac:
    """Per-token action lists and expected audiences; consulted by the server for every request."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.grants: dict[str, Grant] = {}
        self.audiences = dict(DEFAULT_AUDIENCES)
        self.strict_audience = False
        self.refused: list[tuple[str, str]] = []  # (action, scope) of every 403, for tests

    def restrict(self, token: str, actions: tuple[str, ...] | list[str], *, object_id: str | None = None,
                 delay_s: float = 0.0) -> None:
        """From now on ``token`` may only do ``actions`` (wildcards allowed), after ``delay_s`` seconds."""
        with self.lock:
            self.grants[token] = Grant(tuple(actions), object_id or f"oid-{abs(hash(token)) % 10**8:08d}",
                                       time.monotonic() + delay_s)

    def unrestrict(self, token: str) -> None:
        with self.lock:
            self.grants.pop(token, None)

    def check(self, authorization: str, method: str, path: str, kind: str, body: bytes) -> None:
        """Raise the ArmError ARM would answer with, or return when the request may run."""
        if not authorization.startswith("Bearer "):
            return
        token, audience = split_token(authorization[len("Bearer "):])
        plane = "ingest" if kind == "ingest" else "arm" if kind != "unknown" or path.startswith(
            ("/subscriptions", "/providers")) else None
        expected = self.audiences.get(plane) if plane else None
        if expected and (audience or self.strict_audience) and (audience or "").rstrip("/") != expected.rstrip("/"):
            raise ArmError(401, "InvalidAuthenticationTokenAudience",
                           f"The access token has been obtained for wrong audience or resource '{audience}'. "
                           f"It should exactly match with one of the allowed audiences '{expected}', "
                           f"'{expected}/'.")
        with self.lock:
            grant = self.grants.get(token)
        if grant is None or plane != "arm":
            return
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        actions, scope = required_actions(method, path, parsed)
        propagated = time.monotonic() >= grant.effective_at
        for action in actions:
            if not propagated or not allows(grant.actions, action):
                with self.lock:
                    self.refused.append((action, scope))
                raise ArmError(403, "AuthorizationFailed",
                               f"The client '{grant.object_id}' with object id '{grant.object_id}' does not have "
                               f"authorization to perform action '{action}' over scope '{scope}' or the scope is "
                               "invalid. If access was recently granted, please refresh your credentials.")

    def row_filter(self, authorization: str) -> Any:
        """Resource Graph returns only rows the caller may read: a predicate over rows, or None (all)."""
        token = split_token(authorization[len("Bearer "):])[0] if authorization.startswith("Bearer ") else ""
        with self.lock:
            grant = self.grants.get(token)
        if grant is None:
            return None
        return lambda row: allows(grant.actions, f"{row.get('type', '')}/read")
