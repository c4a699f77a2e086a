"""azure-mgmt-network adapter: read NSGs (and, for auto-revert, write rules) for the use cases.

A 403 ``AuthorizationFailed`` on a read is retried for up to ``AUTHZ_RETRY_SECONDS`` (default 20): right after
a deployment the app's role assignment takes minutes to reach ARM everywhere, and the first events would
otherwise be recorded as permanent errors. After that it is the permanent error it was before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from shared.app.config import Settings
from shared.app.events import nsg_of
from shared.azure.apiversions import NETWORK
from shared.azure.credentials import arm_kwargs
from shared.azure.errors import azure_errors
from shared.core.errors import InputError
from shared.core.model import Nsg, parse_nsg, split_resource_id

log = logging.getLogger("nsg_guard.network")


def _authorization_failed(exc: BaseException) -> bool:
    from azure.core.exceptions import HttpResponseError

    code = getattr(getattr(exc, "error", None), "code", None) or ""
    return isinstance(exc, HttpResponseError) and exc.status_code == 403 and code == "AuthorizationFailed"


class AzureNetwork:
    """One NetworkManagementClient per subscription, created on first use and reused."""

    def __init__(self, settings: Settings, credential: Any, *, sleep: Callable[[float], None] = time.sleep,
                 **client_options: Any) -> None:
        self._settings = settings
        self._credential = credential
        self._options = {**arm_kwargs(settings), **client_options}
        self._clients: dict[str, Any] = {}
        self._sleep = sleep
        self.authz_retries = 0

    @property
    def polling_interval(self) -> float:
        """Seconds between long-running operation polls when ARM sends no Retry-After."""
        return float(self._options.get("polling_interval", 30))

    def client(self, subscription_id: str) -> Any:
        client = self._clients.get(subscription_id.lower())
        if client is None:
            from azure.mgmt.network import NetworkManagementClient

            client = NetworkManagementClient(self._credential, subscription_id,
                                             base_url=self._settings.arm_endpoint, **self._options)
            self._clients[subscription_id.lower()] = client
        return client

    def get_nsg(self, nsg_id: str) -> Nsg:
        nsg_of(nsg_id, rule=False)  # validates the id shape
        parts = split_resource_id(nsg_id)
        client = self.client(parts["subscriptions"])
        deadline = time.monotonic() + self._settings.authz_retry_s
        wait = 1.0
        while True:
            try:
                with azure_errors(f"GET {nsg_id}"):
                    model = client.network_security_groups.get(parts["resourcegroups"],
                                                               parts["networksecuritygroups"], api_version=NETWORK)
                break
            except InputError as exc:  # azure_errors maps 403 here; only AuthorizationFailed is retried
                left = deadline - time.monotonic()
                if exc.__cause__ is None or not _authorization_failed(exc.__cause__) or left <= 0:
                    raise
                self.authz_retries += 1
                log.warning("GET %s: 403 AuthorizationFailed (role assignment still propagating?); "
                            "retrying in %.1f s", nsg_id, min(wait, left))
                self._sleep(min(wait, left))
                wait = min(wait * 2, 10.0)
        return parse_nsg(model, self._settings.extra_service_tags, strict=False)  # read from Azure

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
