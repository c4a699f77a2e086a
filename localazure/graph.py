"""Azure Resource Graph stand-in.

KQL is not executed. A query is mapped to a *table* by :func:`select_table`: the first resource type string
(``microsoft.network/networksecuritygroups``, ``microsoft.network/networkinterfaces``,
``microsoft.network/publicipaddresses``) that appears in the query text decides which rows are returned.
Rows are then filtered by the request's subscriptions and paged with ``$top`` / ``$skip`` / ``$skipToken``.

To support another kind of query, register a selector (consulted before the built-in ones)::

    azure.graph.add_selector(
        lambda query: "vnets" if "microsoft.network/virtualnetworks" in query.lower() else None
    )
    azure.graph.seed("vnets", {...row...})

Tables ``nsg`` (generated from the ARM NSG store) and ``nic`` / ``publicip`` (seeded) exist out of the box;
any other table name is just a list of seeded rows.

Two things of real Resource Graph are modelled on top: the ``| project`` of plain columns and of
``name = pack('key', properties.key, ...)`` (any other projection is ignored and full rows are returned), and
the **16 MiB response limit**: a larger page is refused with HTTP 400, code ``BadRequest`` and detail
``ResponsePayloadTooLarge`` ("Response payload size is N, and has exceeded the limit of 16777216. ...").
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from .validation import ArmError

MAX_TOP = 1000
MAX_RESPONSE_BYTES = 16 * 1024 * 1024  # Resource Graph refuses larger pages (ResponsePayloadTooLarge)

#: resource type text in the query -> table name. Extend freely.
TYPE_TABLES: dict[str, str] = {
    "microsoft.network/networksecuritygroups": "nsg",
    "microsoft.network/networkinterfaces": "nic",
    "microsoft.network/publicipaddresses": "publicip",
    "microsoft.machinelearningservices/workspaces": "mlworkspace",
}

Selector = Callable[[str], str | None]


def select_table(query: str) -> str | None:
    """Built-in selector: the table whose resource type string occurs first in the query text."""
    low = query.lower()
    hits = [(low.find(t), table) for t, table in TYPE_TABLES.items() if t in low]
    return min(hits)[1] if hits else None


def _split_id(resource_id: str) -> tuple[str | None, str | None]:
    parts = [p for p in resource_id.split("/") if p]
    low = [p.lower() for p in parts]
    sub = parts[low.index("subscriptions") + 1] if "subscriptions" in low else None
    rg = parts[low.index("resourcegroups") + 1] if "resourcegroups" in low else None
    return sub, rg


def to_graph_row(arm_body: dict[str, Any], tenant_id: str) -> dict[str, Any]:
    """ARM body -> Resource Graph ``resources`` row (adds subscriptionId, resourceGroup, lower-case "
    "type...)."""
    row = copy.deepcopy(arm_body)
    sub, rg = _split_id(row.get("id", ""))
    row.pop("etag", None)
    row["type"] = str(row.get("type", "")).lower()
    row.setdefault("tenantId", tenant_id)
    row.setdefault("kind", "")
    row.setdefault("location", "")
    row.setdefault("resourceGroup", (rg or "").lower())
    row.setdefault("subscriptionId", sub or "")
    row.setdefault("managedBy", "")
    for k in ("sku", "plan", "identity", "zones", "extendedLocation"):
        row.setdefault(k, None)
    row.setdefault("tags", None)
    row.setdefault("properties", {})
    return row


class PayloadTooLarge(ArmError):
    """Resource Graph's answer to a page over the size limit: HTTP 400 with the specific code in details."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(400, "BadRequest", "Please provide below info when asking for support: "
                         "timestamp = 2026-01-01T00:00:00.0000000Z, correlationId = localazure.")
        self.detail = (f"Response payload size is {size}, and has exceeded the limit of {limit}. Please consider "
                       "querying less data at a time and make paginated call if needed.")

    def body(self) -> dict[str, Any]:
        out = super().body()
        out["error"]["details"] = [{"code": "ResponsePayloadTooLarge", "message": self.detail}]
        return out


def _split_top(text: str) -> list[str]:
    """Split on commas outside parentheses and quotes."""
    out, depth, quote, cur = [], 0, "", ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
            continue
        cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def _path(row: dict[str, Any], dotted: str) -> Any:
    value: Any = row
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def projection(query: str) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
    """The query's ``| project`` as a row function, when it only uses columns and ``pack(...)``."""
    m = re.search(r"\|\s*project\s+(.+?)(?=\n\s*\||\Z)", query, re.S)
    if not m:
        return None
    columns: list[tuple[str, Any]] = []
    for item in _split_top(m.group(1)):
        if re.fullmatch(r"\w+", item):
            columns.append((item, item))
            continue
        pm = re.fullmatch(r"(\w+)\s*=\s*(?:bag_)?pack\((.*)\)", item, re.S)
        if not pm:
            return None
        args = _split_top(pm.group(2))
        if len(args) % 2:
            return None
        pairs = []
        for key, expr in zip(args[0::2], args[1::2], strict=True):
            if not re.fullmatch(r"'[^']*'", key) or not re.fullmatch(r"[\w.]+", expr):
                return None
            pairs.append((key[1:-1], expr))
        columns.append((pm.group(1), pairs))

    def apply(row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, how in columns:
            out[name] = row.get(how) if isinstance(how, str) else {k: _path(row, e) for k, e in how}
        return out

    return apply


class GraphStore:
    def __init__(
        self,
        nsg_rows: Callable[[], list[dict[str, Any]]],
        *,
        tenant_id: str,
        quota_per_window: int = 15,
        quota_window_s: float = 5.0,
        enforce_quota: bool = False,
        management_groups: dict[str, list[str]] | None = None,
    ) -> None:
        self.lock = threading.Lock()
        self.tenant_id = tenant_id
        self.tables: dict[str, list[dict[str, Any]]] = {"nic": [], "publicip": []}
        self.providers: dict[str, Callable[[], list[dict[str, Any]]]] = {"nsg": nsg_rows}
        self.selectors: list[Selector] = []
        self.management_groups = management_groups or {}
        self.quota_per_window = quota_per_window
        self.quota_window_s = quota_window_s
        self.enforce_quota = enforce_quota
        self._window_start = time.monotonic()
        self._used = 0
        self.queries: list[str] = []
        self.max_response_bytes = MAX_RESPONSE_BYTES

    # --- config ---
    def add_selector(self, selector: Selector) -> None:
        self.selectors.insert(0, selector)

    def seed(self, table: str, row: dict[str, Any]) -> dict[str, Any]:
        """Add a row (ARM body or Graph row) to ``table``; missing Graph columns are filled from its id."""
        full = to_graph_row(row, self.tenant_id)
        with self.lock:
            self.tables.setdefault(table, []).append(full)
        return full

    def seed_nic(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.seed("nic", row)

    def clear(self, table: str | None = None) -> None:
        with self.lock:
            if table is None:
                for rows in self.tables.values():
                    rows.clear()
            else:
                self.tables.get(table, []).clear()

    # --- quota ---
    def quota_headers(self, count: bool = True) -> tuple[dict[str, str], bool]:
        """Count one query (unless ``count`` is False); return the quota headers and whether it is over "
        "quota."""
        with self.lock:
            now = time.monotonic()
            if now - self._window_start >= self.quota_window_s:
                self._window_start, self._used = now, 0
            if count:
                self._used += 1
            remaining = self.quota_per_window - self._used
            resets = max(0.0, self.quota_window_s - (now - self._window_start))
        secs = int(resets + 0.999)
        headers = {
            "x-ms-user-quota-remaining": str(max(0, remaining)),
            "x-ms-user-quota-resets-after": f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}",
        }
        return headers, self.enforce_quota and remaining < 0

    # --- query ---
    def _rows(self, table: str) -> list[dict[str, Any]]:
        if table in self.providers:
            return [to_graph_row(b, self.tenant_id) for b in self.providers[table]()]
        with self.lock:
            return copy.deepcopy(self.tables.get(table, []))

    def query(self, body: Any, row_filter: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
            raise ArmError(
                400,
                "BadRequest",
                "Please provide below info when asking for support: the request "
                "must contain a non-empty 'query'.",
            )
        query = body["query"]
        self.queries.append(query)
        table = None
        for sel in [*self.selectors, select_table]:
            table = sel(query)
            if table:
                break
        if table is None:
            raise ArmError(
                400,
                "BadRequest",
                "localazure Resource Graph cannot run this query: it mentions none "
                f"of the supported resource types {sorted(TYPE_TABLES)} (add a selector).",
            )
        opts = body.get("options") or {}
        top = opts.get("$top", MAX_TOP)
        skip = opts.get("$skip", 0) or 0
        fmt = opts.get("resultFormat", "objectArray")
        if fmt != "objectArray":
            raise ArmError(400, "BadRequest", "localazure supports only resultFormat 'objectArray'.")
        if not isinstance(top, int) or not 1 <= top <= MAX_TOP:
            raise ArmError(400, "BadRequest", f"$top must be between 1 and {MAX_TOP}; got {top!r}.")
        token = opts.get("$skipToken")
        if token:
            try:
                skip = int(json.loads(base64.urlsafe_b64decode(token.encode()).decode())["offset"])
            except (ValueError, KeyError, TypeError):
                raise ArmError(400, "BadRequest", "Invalid $skipToken.") from None
        rows = self._rows(table)
        subs = body.get("subscriptions")
        mgs = body.get("managementGroups")
        if subs:
            wanted = {s.lower() for s in subs}
            rows = [r for r in rows if str(r.get("subscriptionId", "")).lower() in wanted]
        elif mgs:
            mapped = [s.lower() for mg in mgs for s in self.management_groups.get(mg, [])]
            if mapped:
                rows = [r for r in rows if str(r.get("subscriptionId", "")).lower() in set(mapped)]
        if row_filter is not None:  # only what the caller may read
            rows = [r for r in rows if row_filter(r)]
        rows.sort(key=lambda r: str(r.get("id", "")).lower())
        page = rows[skip : skip + top]
        project = projection(query)
        if project is not None:
            page = [project(r) for r in page]
        result: dict[str, Any] = {
            "totalRecords": len(rows),
            "count": len(page),
            "resultTruncated": "false",
            "data": page,
            "facets": [],
        }
        if skip + top < len(rows):
            result["$skipToken"] = base64.urlsafe_b64encode(
                json.dumps({"offset": skip + top}).encode()
            ).decode()
        size = len(json.dumps(result, separators=(",", ":")).encode())
        if size > self.max_response_bytes:
            raise PayloadTooLarge(size, self.max_response_bytes)
        return result
