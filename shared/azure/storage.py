"""azure-storage-blob adapters: the outbox container and the Event Grid dead-letter container.

In Azure the app's managed identity is used (``OUTBOX_BLOB_ENDPOINT`` + Storage Blob Data Owner, shared
keys are disabled on the account). A connection string (``NSG_GUARD_STORAGE_CONNECTION_STRING``) is
accepted only in local mode (``NSG_GUARD_AUTH=local``, enforced by ``shared.app.config``): Azurite.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.app.config import Settings
from shared.app.outbox import OutboxItem, parse_metadata
from shared.azure.apiversions import STORAGE
from shared.core.errors import ConfigError, InputError, TransientError


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Every storage failure is transient for our purposes except a missing/forbidden configuration."""
    from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError

    try:
        yield
    except ClientAuthenticationError as exc:
        raise TransientError(f"{what}: authentication failed: {type(exc).__name__}") from exc
    except HttpResponseError as exc:
        code = getattr(exc, "error_code", None) or ""
        raise TransientError(f"{what}: HTTP {exc.status_code} {code}".rstrip()) from exc
    except AzureError as exc:
        raise TransientError(f"{what}: {type(exc).__name__}") from exc


def blob_service(settings: Settings, credential: Any, **options: Any) -> Any:
    from azure.storage.blob import BlobServiceClient, ExponentialRetry

    # The storage SDK's default backoff starts at 15 s; the event path cannot wait that long per try.
    # Scale it with SDK_RETRY_BACKOFF like the other clients (0.8 -> 1.6, 4.8, 11.8 s).
    b = settings.retry_backoff
    retry = ExponentialRetry(initial_backoff=2 * b, increment_base=4 * b, retry_total=settings.retry_total,
                             random_jitter_range=min(3, 2 * b))
    kwargs: dict[str, Any] = {"retry_policy": retry, "api_version": STORAGE, **options}
    if settings.storage_connection_string:
        if not settings.local:
            raise ConfigError("NSG_GUARD_STORAGE_CONNECTION_STRING is only for NSG_GUARD_AUTH=local")
        return BlobServiceClient.from_connection_string(settings.storage_connection_string, **kwargs)
    if not settings.outbox_blob_endpoint:
        raise ConfigError("the outbox is not configured: set OUTBOX_BLOB_ENDPOINT (the storage account's blob "
                          "endpoint; the app identity needs Storage Blob Data Owner or Contributor)")
    return BlobServiceClient(account_url=settings.outbox_blob_endpoint, credential=credential, **kwargs)


def storage_configured(settings: Settings) -> bool:
    return bool(settings.outbox_blob_endpoint or (settings.local and settings.storage_connection_string))


class BlobOutboxStore:
    """:class:`shared.app.outbox.OutboxStore` on one blob container (created on first use if missing)."""

    def __init__(self, service: Any, container: str) -> None:
        self._service = service
        self._container = service.get_container_client(container)
        self.container = container

    def _ensure_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        with contextlib.suppress(ResourceExistsError), storage_errors(f"create container {self.container}"):
            self._container.create_container()

    def put(self, name: str, data: bytes, metadata: dict[str, str]) -> None:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.blob import ContentSettings

        content = ContentSettings(content_type="application/gzip")
        for attempt in (1, 2):
            try:
                with storage_errors(f"write outbox blob {name}"):
                    self._container.upload_blob(name, data, overwrite=True, metadata=metadata,
                                                content_settings=content)
                return
            except TransientError as exc:
                if attempt == 1 and isinstance(exc.__cause__, ResourceNotFoundError):
                    self._ensure_container()
                    continue
                raise

    def items(self) -> Iterator[OutboxItem]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            with storage_errors(f"list outbox container {self.container}"):
                blobs = list(self._container.list_blobs(include=["metadata"]))
        except TransientError as exc:
            if isinstance(exc.__cause__, ResourceNotFoundError):
                return  # no container yet: nothing was ever parked
            raise
        for blob in blobs:
            yield parse_metadata(blob.name, dict(blob.metadata or {}))

    def get(self, name: str) -> bytes:
        with storage_errors(f"read outbox blob {name}"):
            return bytes(self._container.download_blob(name).readall())

    def set_metadata(self, name: str, metadata: dict[str, str]) -> None:
        with storage_errors(f"update outbox blob {name}"):
            self._container.get_blob_client(name).set_blob_metadata(metadata)

    def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError), storage_errors(f"delete outbox blob {name}"):
            self._container.delete_blob(name)


class BlobDeadLetters:
    """The Event Grid dead-letter container: ``<SUBSCRIPTION-NAME>/<yyyy>/<m>/<d>/<h>/<guid>.json`` blobs,
    each a JSON array of one or more events."""

    def __init__(self, service: Any, container: str) -> None:
        self._container = service.get_container_client(container)
        self.container = container

    def names(self, prefix: str | None = None) -> list[str]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            with storage_errors(f"list dead-letter container {self.container}"):
                return sorted(b.name for b in self._container.list_blobs(name_starts_with=prefix))
        except TransientError as exc:
            if isinstance(exc.__cause__, ResourceNotFoundError):
                raise InputError(f"dead-letter container {self.container!r} does not exist") from None
            raise

    def read(self, name: str) -> bytes:
        with storage_errors(f"read dead-letter blob {name}"):
            return bytes(self._container.download_blob(name).readall())

    def delete(self, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        with contextlib.suppress(ResourceNotFoundError), storage_errors(f"delete dead-letter blob {name}"):
            self._container.delete_blob(name)
