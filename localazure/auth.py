"""Static bearer-token credential for the local stand-ins (implements azure-core's ``TokenCredential``)."""

from __future__ import annotations

import threading
import time
from typing import Any

from azure.core.credentials import AccessToken, AccessTokenInfo

DEFAULT_TOKEN = "localazure-dev-token"


class StaticTokenCredential:
    """Returns one fixed token for every scope; records the scopes each call asked for.

    Implements both ``get_token`` (``TokenCredential``) and ``get_token_info`` (``SupportsTokenInfo``, which
    azure-core >= 1.31 prefers). ``requested_scopes`` lists one tuple of scopes per token request, so tests
    can check e.g. that the Logs Ingestion client asks for ``https://monitor.azure.com/.default``.
    """

    def __init__(self, token: str = DEFAULT_TOKEN, *, expires_in: int = 3600):
        self.token = token
        self.expires_in = expires_in
        self.requested_scopes: list[tuple[str, ...]] = []
        self._lock = threading.Lock()

    def _record(self, scopes: tuple[str, ...]) -> int:
        with self._lock:
            self.requested_scopes.append(tuple(scopes))
        return int(time.time()) + self.expires_in

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        return AccessToken(self.token, self._record(scopes))

    def get_token_info(self, *scopes: str, options: dict[str, Any] | None = None) -> AccessTokenInfo:
        return AccessTokenInfo(self.token, self._record(scopes))

    def close(self) -> None:
        pass

    def __enter__(self) -> StaticTokenCredential:
        return self

    def __exit__(self, *exc: object) -> None:
        pass
