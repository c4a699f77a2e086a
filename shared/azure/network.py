"""azure-mgmt-network adapter: read NSGs (and, for auto-revert, write rules) for the use cases."""

from __future__ import annotations

from typing import Any

from shared.azure.credentials import client_kwargs
from shared.azure.errors import azure_errors
from shared.config import Settings
from shared.events import nsg_of
from shared.model import Nsg, parse_nsg, split_resource_id


class AzureNetwork:
    """One NetworkManagementClient per subscription, created on first use and reused."""

    def __init__(self, settings: Settings, credential: Any, **client_options: Any) -> None:
        self._settings = settings
        self._credential = credential
        self._options = {**client_kwargs(settings), **client_options}
        self._clients: dict[str, Any] = {}

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
        with azure_errors(f"GET {nsg_id}"):
            model = client.network_security_groups.get(parts["resourcegroups"], parts["networksecuritygroups"])
        return parse_nsg(model, self._settings.extra_service_tags, strict=False)  # read from Azure

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
