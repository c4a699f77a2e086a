"""Azure Policy exemptions over ARM (the event path, ``nsg-guard exempt``) and Resource Graph (the sweep).

ARM: ``{scope}/providers/Microsoft.Authorization/policyExemptions`` at the preview api-version pinned in
:data:`API_VERSION` (the only one place it is named). Requests go through azure-mgmt-network's ARM pipeline
(bearer token, retries honouring ``Retry-After``) because no resource SDK is a dependency of the app.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import quote

from shared.azure.errors import azure_errors
from shared.azure.network import AzureNetwork
from shared.core.errors import InputError, TransientError
from shared.core.exemptions import ExemptionContext, ExemptionSettings
from shared.core.model import split_resource_id
from shared.core.policyexemptions import ExemptionIndex

log = logging.getLogger("nsg_guard.exemptions")

API_VERSION = "2024-12-01-preview"
MAX_PAGES = 100


class ArmPolicyExemptions:
    """Read the exemptions that apply to one resource; create one (``nsg-guard exempt``)."""

    def __init__(self, network: AzureNetwork) -> None:
        self._network = network
        self.calls = 0

    def _client(self, resource_id: str) -> Any:
        sub = split_resource_id(resource_id).get("subscriptions")
        if not sub:
            raise InputError(f"{resource_id!r} is not inside a subscription")
        return self._network.client(sub)

    def _send(self, client: Any, method: str, url: str, what: str, body: Any = None) -> Any:
        from azure.core.exceptions import HttpResponseError
        from azure.core.rest import HttpRequest
        from azure.mgmt.core.exceptions import ARMErrorFormat

        self.calls += 1
        with azure_errors(what):
            request = HttpRequest(method, url, json=body) if body is not None else HttpRequest(method, url)
            response = client.send_request(request)
            if response.status_code >= 300:
                raise HttpResponseError(response=response, error_format=ARMErrorFormat)
            return response.json() if response.content else None

    def list_for(self, resource_id: str) -> list[dict[str, Any]]:
        """Every exemption at the resource or a scope above it (``$filter=atScope()``), all pages."""
        client = self._client(resource_id)
        url: str | None = (f"{resource_id.rstrip('/')}/providers/Microsoft.Authorization/policyExemptions"
                           f"?api-version={API_VERSION}&$filter={quote('atScope()')}")
        out: list[dict[str, Any]] = []
        for _ in range(MAX_PAGES):
            if url is None:
                return out
            doc = self._send(client, "GET", url, f"list policy exemptions of {resource_id}")
            if not isinstance(doc, dict) or not isinstance(doc.get("value"), list):
                raise TransientError(f"list policy exemptions of {resource_id}: answer without a 'value' list")
            out.extend(doc["value"])
            url = doc.get("nextLink") or None
        raise TransientError(f"list policy exemptions of {resource_id}: more than {MAX_PAGES} pages")

    def get(self, exemption_id: str) -> dict[str, Any] | None:
        """One exemption (with ``systemData``); None when it no longer exists."""
        from shared.core.errors import NsgNotFound

        try:
            doc = self._send(self._client(exemption_id), "GET", f"{exemption_id}?api-version={API_VERSION}",
                             f"GET policy exemption {exemption_id}")
        except NsgNotFound:
            return None
        return doc if isinstance(doc, dict) else None

    def put(self, scope: str, name: str, properties: dict[str, Any]) -> dict[str, Any]:
        client = self._client(scope)
        url = (f"{scope.rstrip('/')}/providers/Microsoft.Authorization/policyExemptions/{quote(name)}"
               f"?api-version={API_VERSION}")
        return self._send(client, "PUT", url, f"create policy exemption {name} on {scope}",
                          {"properties": properties})

    def index_for(self, nsg_id: str, settings: ExemptionSettings, now: datetime) -> ExemptionIndex:
        """The event path: the one NSG's exemptions. TransientError propagates (Event Grid redelivers);
        a permanent failure (e.g. 403) gives an unavailable index that leaves findings Open with a note."""
        if not settings.policy:
            return ExemptionIndex()
        try:
            raws = self.list_for(nsg_id)
        except InputError as exc:
            log.error("cannot read policy exemptions of %s: %s", nsg_id, exc)
            return ExemptionIndex.unavailable(str(exc))
        index = ExemptionIndex.parse(raws, now=now, max_days=settings.max_days, assignment=settings.assignment)
        for err in index.rejected:
            log.error("policy exemption of %s is not an exemption: %s", nsg_id, err)
        return index


def nsg_exemption_context(settings: Any, network: AzureNetwork, nsg_id: str, actor_object_id: str | None = None
                          ) -> ExemptionContext:
    """The exemption context for acting on one NSG outside an event (operator helper, revert jobs): wrap the
    evaluation and the revert in ``with exemption_context(nsg_exemption_context(...)):`` so approved rules
    stay exempt."""
    from datetime import UTC

    index = ArmPolicyExemptions(network).index_for(nsg_id, settings.exemptions, datetime.now(UTC))
    return ExemptionContext(settings.exemptions, index, actor_object_id)
