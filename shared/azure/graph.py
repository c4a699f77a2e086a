"""Inventory adapters: Azure Resource Graph (a plain azure-core pipeline) and per-subscription ARM listing.

Resource Graph: ``POST /providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01``, ``$top`` 1,000,
``$skipToken`` paging. The request goes through azure-core's public ``PipelineClient.send_request`` (auth with
the cloud's ARM audience from settings, retries honouring ``Retry-After``) and the JSON is read as is: the
generated model deserializer walks every value of every row and doubled the sweep's CPU time
(bench/sweep.py), and the SDK's raw-request hook is private.

A page over 16 MiB is refused with HTTP 400 ``ResponsePayloadTooLarge``: the NSG query already projects only
what evaluation needs (no ``defaultSecurityRules``; :func:`with_default_rules` puts the six standard ones
back), and when it still happens ``$top`` is halved and the same page asked again.
Throttling: the SDK retries 429/5xx itself (honouring ``Retry-After``). On top of that this adapter reads
the documented quota headers on every answer: when ``x-ms-user-quota-remaining`` reaches 0 it waits
``x-ms-user-quota-resets-after`` (``hh:mm:ss``) before the next call, and a 429 that is still failing after
the SDK's retries is waited out the same way (up to ``max_throttle_waits`` times) before giving up.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from shared.app.config import Settings
from shared.azure.apiversions import NETWORK, RESOURCE_GRAPH
from shared.azure.credentials import arm_pipeline
from shared.azure.defaultrules import with_default_rules
from shared.azure.errors import azure_errors
from shared.azure.network import AzureNetwork
from shared.core.errors import TransientError
from shared.core.inventory import PAGE_SIZE, Scope

log = logging.getLogger("nsg_guard.graph")

MAX_QUOTA_WAIT_S = 60.0


def parse_resets_after(value: str | None) -> float | None:
    """``"00:00:03"`` -> 3.0 (also accepts plain seconds); None when absent or unreadable."""
    if not value:
        return None
    try:
        if ":" in value:
            h, m, s = value.split(":")
            return int(h) * 3600 + int(m) * 60 + float(s)
        return float(value)
    except ValueError:
        return None


class ResourceGraphSource:
    """Paged Resource Graph queries over a :class:`Scope`; counts every HTTP call it makes in ``calls``."""

    def __init__(self, settings: Settings, credential: Any, *, page_size: int = PAGE_SIZE,
                 max_throttle_waits: int = 5, sleep: Callable[[float], None] = time.sleep,
                 **client_options: Any) -> None:
        self._client = arm_pipeline(settings, credential, **client_options)
        self._url = f"{settings.arm_endpoint.rstrip('/')}/providers/Microsoft.ResourceGraph/resources"
        self.page_size = page_size
        self.shrinks = 0
        self.max_throttle_waits = max_throttle_waits
        self._sleep = sleep
        self._wait_before_next = 0.0
        self.calls = 0
        self.throttle_waits = 0

    def pages(self, query: str, scope: Scope) -> Iterator[list[dict[str, Any]]]:
        for request_scope in scope.request_scopes():
            token: str | None = None
            while True:
                rows, token = self._page(query, request_scope, token)
                yield rows
                if not token:
                    break

    def _page(self, query: str, request_scope: dict[str, list[str]], token: str | None
              ) -> tuple[list[dict[str, Any]], str | None]:
        from azure.core.exceptions import HttpResponseError
        from azure.core.rest import HttpRequest
        from azure.mgmt.core.exceptions import ARMErrorFormat

        attempt = 0
        while True:
            options: dict[str, Any] = {"$top": self.page_size, "resultFormat": "objectArray"}
            if token:
                options["$skipToken"] = token
            body = {**request_scope, "query": query, "options": options}
            if self._wait_before_next > 0:
                self._wait(self._wait_before_next, "quota used up")
                self._wait_before_next = 0.0
            self.calls += 1
            try:
                with azure_errors("Resource Graph query"):
                    request = HttpRequest("POST", self._url,
                                          params={"api-version": RESOURCE_GRAPH}, json=body)
                    response = self._client.send_request(request)
                    if response.status_code == 400 and self._too_large(response) and self.page_size > 1:
                        self.page_size = max(1, self.page_size // 2)
                        self.shrinks += 1
                        log.warning("Resource Graph page over 16 MiB: retrying with $top=%d", self.page_size)
                        continue
                    if response.status_code != 200:
                        raise HttpResponseError(response=response, error_format=ARMErrorFormat)
                    doc = response.json()
            except TransientError as exc:
                cause = exc.__cause__
                if isinstance(cause, HttpResponseError) and cause.status_code == 429 \
                        and attempt < self.max_throttle_waits:
                    attempt += 1
                    headers = cause.response.headers if cause.response is not None else {}
                    wait = parse_resets_after(headers.get("x-ms-user-quota-resets-after")) \
                        or parse_resets_after(headers.get("Retry-After")) or 1.0
                    self._wait(wait, "throttled (429)")
                    continue
                raise
            self._note_quota(response.headers)
            rows = doc.get("data") if isinstance(doc, dict) else None
            if not isinstance(rows, list):
                raise TransientError("Resource Graph answered without a 'data' list (resultFormat objectArray)")
            return [with_default_rules(row) for row in rows], doc.get("$skipToken") or None

    @staticmethod
    def _too_large(response: Any) -> bool:
        """Azure's body: ``{"error": {"code": "BadRequest", "details": [{"code": "ResponsePayloadTooLarge"}]}}``."""
        try:
            error = response.json().get("error") or {}
        except (ValueError, AttributeError):
            return False
        codes = [error.get("code")] + [d.get("code") for d in error.get("details") or [] if isinstance(d, dict)]
        return "ResponsePayloadTooLarge" in codes

    def _note_quota(self, headers: Any) -> None:
        remaining = headers.get("x-ms-user-quota-remaining")
        if remaining is not None and remaining.strip().isdigit() and int(remaining) <= 0:
            self._wait_before_next = parse_resets_after(headers.get("x-ms-user-quota-resets-after")) or 1.0

    def _wait(self, seconds: float, why: str) -> None:
        seconds = min(MAX_QUOTA_WAIT_S, max(0.0, seconds))
        self.throttle_waits += 1
        log.info("Resource Graph %s: waiting %.1f s", why, seconds)
        self._sleep(seconds)

    def close(self) -> None:
        self._client.close()


class ArmSubscriptionLister:
    """The fallback inventory: ``GET /subscriptions/{id}/providers/Microsoft.Network/networkSecurityGroups``
    page by page (``nextLink``), one subscription at a time. Counts HTTP pages in ``calls``."""

    def __init__(self, network: AzureNetwork) -> None:
        self._network = network
        self.calls = 0

    def nsg_pages(self, subscription_id: str) -> Iterator[list[Any]]:
        client = self._network.client(subscription_id)
        with azure_errors(f"list NSGs of subscription {subscription_id}"):
            pager = client.network_security_groups.list_all(api_version=NETWORK).by_page()
            while True:
                try:
                    page = list(next(pager))
                except StopIteration:
                    return
                self.calls += 1
                yield page
