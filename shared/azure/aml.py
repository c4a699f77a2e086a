"""Azure ML adapter: workspaces from Resource Graph, computes over plain ARM GETs (azure-core pipeline).

``GET …/workspaces/{ws}/computes?api-version=2025-12-01`` pages with ``nextLink``; ``POST
…/computes/{c}/listNodes`` gives a cluster's nodes (also paged). The generated azure-mgmt-machinelearningservices
package is pinned to a 2020 API without ``enableNodePublicIp``, and azure-ai-ml is heavy: an
:class:`azure.mgmt.core.ARMPipelineClient` with the usual ARM policies is all this needs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from shared.app.aml_sweep import WORKSPACE_QUERY
from shared.app.config import Settings
from shared.azure.credentials import scope
from shared.azure.errors import azure_errors
from shared.core.aml import COMPUTE_TYPE, Compute, workspace_of
from shared.core.errors import InputError
from shared.core.inventory import Scope
from shared.core.model import Nsg, parse_nsg

API_VERSION = "2025-12-01"
MAX_PAGES = 1000  # a nextLink loop is a server bug, not a reason to spin forever


def nsgs_near_query(compute: Compute) -> str:
    """NSGs that may stand in front of a compute: its subnet's, and AML's own in the VNet's resource group."""
    subnet = (compute.subnet_id or "").lower().replace("'", "")
    rg = compute.vnet_key[1].replace("'", "") if compute.vnet_key else ""
    return f"""resources
| where type =~ 'microsoft.network/networksecuritygroups'
| where tolower(tostring(properties.subnets)) has '{subnet}'
    or (resourceGroup =~ '{rg}' and name contains 'azurebatch-cloudservice')
| project id, name, type, location, resourceGroup, subscriptionId, tags, properties
| order by subscriptionId asc, id asc"""


class AzureMl:
    """Computes per workspace, a compute by id, a cluster's nodes; NSGs near a compute (event path)."""

    def __init__(self, settings: Settings, credential: Any, graph: Any = None, *, own_graph: bool = False,
                 **client_options: Any) -> None:
        """``graph``: the sweep's Resource Graph source; ``own_graph``: build one on first use (event path).

        Clients are built on first use: a worker that never sees a compute event never imports them.
        """
        self._settings = settings
        self._credential = credential
        self._base = settings.arm_endpoint.rstrip("/")
        self._options = {"retry_total": settings.retry_total, "retry_backoff_factor": settings.retry_backoff,
                         **client_options}
        self._client_obj: Any = None
        self._graph = graph
        self._own_graph = own_graph and graph is None
        self.calls = 0

    @property
    def _client(self) -> Any:
        if self._client_obj is None:
            from azure.core.pipeline import policies
            from azure.core.pipeline.transport import RequestsTransport
            from azure.mgmt.core import ARMPipelineClient
            from azure.mgmt.core.policies import ARMChallengeAuthenticationPolicy, ARMHttpLoggingPolicy

            ca = self._settings.ca_bundle
            self._client_obj = ARMPipelineClient(
                base_url=self._base, transport=RequestsTransport(**({"connection_verify": ca} if ca else {})),
                policies=[policies.RequestIdPolicy(), policies.HeadersPolicy(),
                          policies.UserAgentPolicy(sdk_moniker="nsg-guard-aml"),
                          policies.RetryPolicy(retry_total=self._options["retry_total"],
                                               retry_backoff_factor=self._options["retry_backoff_factor"]),
                          ARMChallengeAuthenticationPolicy(self._credential, scope(self._settings.arm_audience)),
                          ARMHttpLoggingPolicy()])
        return self._client_obj

    @property
    def graph(self) -> Any:
        if self._graph is None and self._own_graph:
            from shared.azure.graph import ResourceGraphSource

            self._graph = ResourceGraphSource(self._settings, self._credential)
        return self._graph

    # --- HTTP ----------------------------------------------------------------------------------------
    def _call(self, method: str, url: str, what: str) -> dict[str, Any]:
        from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, map_error
        from azure.core.rest import HttpRequest
        from azure.mgmt.core.exceptions import ARMErrorFormat

        if not url.lower().startswith(self._base.lower() + "/"):
            # Our token goes wherever the URL points: never follow a nextLink off the ARM endpoint.
            raise InputError(f"{what}: refusing to follow {urlsplit(url).netloc!r}, not the ARM endpoint")
        self.calls += 1
        with azure_errors(what):
            response = self._client.send_request(HttpRequest(method, url, headers={"Accept": "application/json"}))
            if response.status_code >= 300:
                map_error(response.status_code, response, {404: ResourceNotFoundError})
                raise HttpResponseError(response=response, error_format=ARMErrorFormat)
        try:
            body = response.json() if response.content else {}
        except (ValueError, json.JSONDecodeError):
            raise InputError(f"{what}: the answer is not JSON") from None
        if not isinstance(body, dict):
            raise InputError(f"{what}: the answer is not a JSON object")
        return body

    def _paged(self, method: str, url: str, what: str, key: str) -> Iterator[list[Any]]:
        for _ in range(MAX_PAGES):
            body = self._call(method, url, what)
            items = body.get(key) or []
            if not isinstance(items, list):
                raise InputError(f"{what}: {key!r} is not a list")
            yield items
            nxt = body.get("nextLink")
            if not nxt:
                return
            if not isinstance(nxt, str):
                raise InputError(f"{what}: nextLink is not a string")
            url = nxt
        raise InputError(f"{what}: more than {MAX_PAGES} pages; the nextLink chain does not end")

    # --- the ComputeSource protocol (shared.app.aml_sweep) -----------------------------------------------
    def workspace_pages(self, scope: Scope) -> Iterator[list[dict[str, Any]]]:
        if self.graph is None:
            raise InputError("Resource Graph is not configured: Azure ML workspaces cannot be listed")
        yield from self.graph.pages(WORKSPACE_QUERY, scope)

    def compute_pages(self, workspace_id: str) -> Iterator[list[dict[str, Any]]]:
        url = f"{self._base}{workspace_id.rstrip('/')}/computes?api-version={API_VERSION}"
        yield from self._paged("GET", url, f"list computes of {workspace_id}", "value")

    def list_nodes(self, compute_id: str) -> dict[str, Any]:
        workspace_of(compute_id)
        url = f"{self._base}{compute_id}/listNodes?api-version={API_VERSION}"
        nodes = [n for page in self._paged("POST", url, f"listNodes of {compute_id}", "nodes") for n in page]
        return {"nodes": nodes}

    # --- event path ----------------------------------------------------------------------------------
    def get_compute(self, compute_id: str) -> dict[str, Any]:
        """The compute's ARM body; raises ``NsgNotFound`` (any resource: 404) when it is gone."""
        workspace_of(compute_id)
        body = self._call("GET", f"{self._base}{compute_id}?api-version={API_VERSION}", f"GET {compute_id}")
        if str(body.get("type", COMPUTE_TYPE)).lower() != COMPUTE_TYPE:
            raise InputError(f"GET {compute_id}: type {body.get('type')!r} is not an Azure ML compute")
        return body

    def nsgs_near(self, compute: Compute) -> list[Nsg]:
        """Every NSG that may guard ``compute`` (the pure core decides which really do)."""
        if self.graph is None or not compute.vnet_key:
            return []
        scope = Scope(subscriptions=(compute.vnet_key[0],))
        out = []
        for page in self.graph.pages(nsgs_near_query(compute), scope):
            for row in page:
                out.append(parse_nsg(row, self._settings.extra_service_tags))
        return out

    def close(self) -> None:
        if self._client_obj is not None:
            self._client_obj.close()
            self._client_obj = None
        if self._own_graph and self._graph is not None:
            self._graph.close()
            self._graph = None
