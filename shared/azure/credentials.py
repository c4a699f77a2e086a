"""Credentials: managed identity in Azure, the developer's login for the CLI, a static token locally.

The local mode is explicit (``NSG_GUARD_AUTH=local``) and only ever talks to loopback endpoints
(enforced in ``shared.app.config``); there is no silent fallback from one mode to another.

Token audiences come from settings (``ARM_AUDIENCE``, ``LOGS_INGESTION_AUDIENCE``), never from SDK defaults:
a sovereign cloud needs its own audience next to its endpoint. The local credential writes the audience it
was asked for into the token (``<token>|<audience>``) so the stand-ins can refuse a wrong one like Azure.
"""

from __future__ import annotations

import time
from typing import Any

from shared.app.config import Settings


class LocalTokenCredential:
    """A ``TokenCredential`` returning the local stand-ins' static bearer token."""

    def __init__(self, token: str) -> None:
        self._token = token

    def _for(self, scopes: tuple[str, ...]) -> str:
        audience = scopes[0].removesuffix(".default").rstrip("/") if scopes else ""
        return f"{self._token}|{audience}" if audience else self._token

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken(self._for(scopes), int(time.time()) + 3600)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        from azure.core.credentials import AccessTokenInfo

        return AccessTokenInfo(self._for(scopes), int(time.time()) + 3600)

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


def scope(audience: str) -> str:
    """``https://management.azure.com`` -> ``https://management.azure.com/.default``."""
    return audience.rstrip("/") + "/.default"


def arm_kwargs(settings: Settings) -> dict[str, Any]:
    """``client_kwargs`` plus the ARM token scope of the configured cloud (for azure-mgmt-* clients)."""
    return {**client_kwargs(settings), "credential_scopes": [scope(settings.arm_audience)]}


def arm_pipeline(settings: Settings, credential: Any, **options: Any) -> Any:
    """A public azure-core ``PipelineClient`` for plain ARM REST calls (Resource Graph): bearer auth with the
    configured ARM audience, retries honouring ``Retry-After``, the same transport options as the SDK clients."""
    from azure.core import PipelineClient
    from azure.core.pipeline import policies

    kwargs = {**client_kwargs(settings), **options}
    kwargs.pop("credential_scopes", None)
    pipeline = [
        policies.RequestIdPolicy(**kwargs),
        policies.HeadersPolicy(**kwargs),
        policies.UserAgentPolicy(sdk_moniker="nsg-guard", **kwargs),
        policies.ProxyPolicy(**kwargs),
        policies.ContentDecodePolicy(**kwargs),
        policies.RetryPolicy(**kwargs),
        policies.BearerTokenCredentialPolicy(credential, scope(settings.arm_audience), **kwargs),
        policies.NetworkTraceLoggingPolicy(**kwargs),
        policies.DistributedTracingPolicy(**kwargs),
        policies.HttpLoggingPolicy(**kwargs),
    ]
    return PipelineClient(base_url=settings.arm_endpoint, policies=pipeline, **kwargs)
