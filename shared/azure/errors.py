"""Map Azure SDK exceptions onto NSG Guard's: transient (retry later) or permanent (record and move on)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from shared.core.errors import InputError, NsgNotFound, TransientError

RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})


@contextmanager
def azure_errors(what: str) -> Iterator[None]:
    """Translate SDK errors raised inside the block; ``what`` says what we were doing (no secrets)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except ResourceNotFoundError as exc:
        raise NsgNotFound(f"{what}: not found") from exc
    except ClientAuthenticationError as exc:
        # Token acquisition failed (IMDS hiccup, expired login): may well succeed on redelivery.
        raise TransientError(f"{what}: authentication failed: {type(exc).__name__}") from exc
    except HttpResponseError as exc:
        code = getattr(getattr(exc, "error", None), "code", None) or ""
        status = exc.status_code or 0
        if status in RETRYABLE_STATUS or status == 0:
            raise TransientError(f"{what}: HTTP {status} {code}".rstrip()) from exc
        # 400/401/403 and friends: retrying will not help; surface it.
        raise InputError(f"{what}: HTTP {status} {code}: {exc.message or ''}".strip()) from exc
    except (ServiceRequestError, ServiceResponseError) as exc:
        raise TransientError(f"{what}: connection failed: {type(exc).__name__}") from exc
