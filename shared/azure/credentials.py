"""Credentials: managed identity in Azure, the developer's login for the CLI, a static token locally.

The local mode is explicit (``NSG_GUARD_AUTH=local``) and only ever talks to loopback endpoints
(enforced in ``shared.config``); there is no silent fallback from one mode to another.
"""

from __future__ import annotations

import time
from typing import Any

from shared.config import Settings


class LocalTokenCredential:
    """A ``TokenCredential`` returning the local stand-ins' static bearer token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._token, int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._token, int(time.time()) + 3600)

    def close(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:  # never show the token
        return "LocalTokenCredential(***)"


def make_credential(settings: Settings) -> Any:
    if settings.auth == "local":
        assert settings.local_token  # validated by Settings.from_env
        return LocalTokenCredential(settings.local_token)
    if settings.auth == "managed-identity":
        from azure.identity import ManagedIdentityCredential

        return ManagedIdentityCredential(client_id=settings.client_id) if settings.client_id \
            else ManagedIdentityCredential()
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential(managed_identity_client_id=settings.client_id)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Transport options shared by every SDK client (TLS trust for the local stand-ins)."""
    kwargs: dict[str, Any] = {"retry_total": settings.retry_total,
                              "retry_backoff_factor": settings.retry_backoff}
    if settings.ca_bundle:
        kwargs["connection_verify"] = settings.ca_bundle
    return kwargs
