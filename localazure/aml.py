"""Azure Machine Learning stand-in: workspaces (Resource Graph rows) and computes (ARM REST).

Routes (under ``/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices``):

* ``GET  …/workspaces/{ws}/computes`` - list, paged with ``nextLink`` (``$skipToken``), ``page_size`` a page;
* ``GET|PUT|DELETE …/workspaces/{ws}/computes/{name}`` - one compute (PUT/DELETE publish the Event Grid
  ``…/workspaces/computes/write|delete`` event, like ARM);
* ``POST …/computes/{name}/listNodes`` - a cluster's nodes (``{"nodes": [...]}``, paged the same way).

Workspaces are Resource Graph rows (table ``mlworkspace``); Resource Graph does not index computes, so
neither does this stand-in. Every request needs ``api-version`` (ARM's 400 otherwise); unknown workspaces and
computes are ARM 404s with the real error codes.
"""

from __future__ import annotations

import copy
import threading
from typing import Any
from urllib.parse import quote, urlsplit

from .validation import ArmError

PROVIDER = "microsoft.machinelearningservices"
WORKSPACE_TABLE = "mlworkspace"
COMPUTE_ARM_TYPE = "Microsoft.MachineLearningServices/workspaces/computes"


def aml_route(method: str, parts: list[str], low: list[str]) -> tuple[str, str, dict[str, str]] | None:
    """(kind, resource, params) for an AML path, else None. Kind ``aml`` for every AML request."""
    n = len(parts)
    if not (n >= 8 and low[0] == "subscriptions" and low[2] == "resourcegroups" and low[4] == "providers"
            and low[5] == PROVIDER and low[6] == "workspaces"):
        return None
    p = {"sub": parts[1], "rg": parts[3], "ws": parts[7]}
    if n == 9 and low[8] == "computes":
        return "aml", "computes", p
    if n == 10 and low[8] == "computes":
        return "aml", "compute", {**p, "name": parts[9]}
    if n == 11 and low[8] == "computes" and low[10] == "listnodes":
        return "aml", "nodes", {**p, "name": parts[9]}
    return None


def workspace_id(sub: str, rg: str, ws: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"


class AmlStore:
    def __init__(self, graph: Any, page_size: int = 50) -> None:
        self.graph = graph
        self.page_size = page_size
        self.lock = threading.Lock()
        self.workspaces: dict[str, dict[str, Any]] = {}
        self.computes: dict[str, dict[str, dict[str, Any]]] = {}  # workspace id -> name -> body (lower keys)
        self.nodes: dict[str, list[dict[str, Any]]] = {}  # compute id (lower) -> nodes

    # --- seeding -------------------------------------------------------------------------------------
    def seed_workspace(self, sub: str, rg: str, name: str, location: str = "westeurope",
                       tags: dict[str, str] | None = None) -> str:
        wid = workspace_id(sub, rg, name)
        body = {"id": wid, "name": name, "type": "Microsoft.MachineLearningServices/workspaces",
                "location": location, "tags": tags or {}, "kind": "Default",
                "properties": {"provisioningState": "Succeeded"}}
        with self.lock:
            self.workspaces[wid.lower()] = body
            self.computes.setdefault(wid.lower(), {})
        self.graph.seed(WORKSPACE_TABLE, body)
        return wid

    def seed_compute(self, body: dict[str, Any], nodes: list[dict[str, Any]] | None = None) -> str:
        """Add a compute from its ARM body (its workspace must be seeded); ``nodes`` for ``listNodes``."""
        cid = body["id"]
        wid = cid.rsplit("/computes/", 1)[0].lower()
        with self.lock:
            if wid not in self.workspaces:
                raise KeyError(f"seed the workspace of {cid} first")
            self.computes[wid][cid.rsplit("/", 1)[-1].lower()] = copy.deepcopy(body)
            if nodes is not None:
                self.nodes[cid.lower()] = copy.deepcopy(nodes)
        return cid

    def update_compute(self, compute_id: str, fn: Any) -> dict[str, Any]:
        """Change a compute behind the client's back (``fn`` edits the body in place); no event."""
        wid, name = compute_id.rsplit("/computes/", 1)
        with self.lock:
            body = self.computes[wid.lower()][name.lower()]
            fn(body)
            return copy.deepcopy(body)

    # --- requests ------------------------------------------------------------------------------------
    def handle(self, azure: Any, h: Any, resource: str, p: dict[str, str], query: dict[str, str],
               body: bytes) -> tuple[int, Any, dict[str, str]]:
        api = azure._api_version(query)
        wid = workspace_id(p["sub"], p["rg"], p["ws"])
        with self.lock:
            if wid.lower() not in self.workspaces:
                raise ArmError(404, "ResourceNotFound", f"The Resource 'Microsoft.MachineLearningServices/"
                                                        f"workspaces/{p['ws']}' under resource group "
                                                        f"'{p['rg']}' was not found.")
            computes = self.computes[wid.lower()]
            method = h.command
            if resource == "computes":
                if method != "GET":
                    raise ArmError(405, "MethodNotAllowed", f"The requested method {method} is not allowed.")
                items = [copy.deepcopy(c) for _, c in sorted(computes.items())]
                return 200, self._page(h, items, "value", query, api), {}
            name = p["name"]
            cid = f"{wid}/computes/{name}"
            current = computes.get(name.lower())
            if resource == "nodes":
                if method != "POST":
                    raise ArmError(405, "MethodNotAllowed", f"The requested method {method} is not allowed.")
                self._require(current, name)
                nodes = copy.deepcopy(self.nodes.get(cid.lower(), []))
                return 200, self._page(h, nodes, "nodes", query, api), {}
            if method == "GET":
                return 200, copy.deepcopy(self._require(current, name)), {}
            if method == "DELETE":
                if current is None:
                    return 204, None, {}
                del computes[name.lower()]
                self.nodes.pop(cid.lower(), None)
                status, out = 200, None
            elif method == "PUT":
                data = azure._json(body)
                if not isinstance(data, dict) or not isinstance(data.get("properties"), dict) \
                        or not data["properties"].get("computeType"):
                    raise ArmError(400, "BadRequest", "properties.computeType is required.")
                stored = {**data, "id": cid, "name": name, "type": COMPUTE_ARM_TYPE}
                stored["properties"] = {**data["properties"], "provisioningState": "Succeeded"}
                computes[name.lower()] = stored
                status, out = (200 if current is not None else 201), copy.deepcopy(stored)
            else:
                raise ArmError(405, "MethodNotAllowed", f"The requested method {method} is not allowed.")
        principal = azure.principal_for(h.headers.get("Authorization", ""))
        if principal is not None:
            operation = "Microsoft.MachineLearningServices/workspaces/computes/" + (
                "delete" if method == "DELETE" else "write")
            event = azure.event_grid.publish(resource_id=cid, subscription=p["sub"], operation=operation,
                                             delete=method == "DELETE", method=method,
                                             url=f"https://management.azure.com{h.path}", principal=principal)
            event["data"]["resourceProvider"] = "Microsoft.MachineLearningServices"
        return status, out, {}

    @staticmethod
    def _require(current: dict[str, Any] | None, name: str) -> dict[str, Any]:
        if current is None:
            raise ArmError(404, "ResourceNotFound", f"The Resource 'Microsoft.MachineLearningServices/workspaces/"
                                                    f"computes/{name}' was not found.")
        return current

    def _page(self, h: Any, items: list[Any], key: str, query: dict[str, str], api: str) -> dict[str, Any]:
        token = query.get("$skipToken") or query.get("$skiptoken") or "0"
        if not token.isdigit():
            raise ArmError(400, "InvalidSkipToken", "The $skipToken is invalid.")
        start = int(token)
        out: dict[str, Any] = {key: items[start:start + self.page_size]}
        if start + self.page_size < len(items):
            path = urlsplit(h.path).path
            out["nextLink"] = f"{h.base_url()}{path}?api-version={quote(api)}&$skipToken={start + self.page_size}"
        return out
