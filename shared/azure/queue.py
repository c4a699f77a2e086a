"""Storage adapters of the revert queue: enqueue jobs (azure-storage-queue) and one lease per NSG (a blob
lease), so concurrent jobs for one NSG never write at the same time.

Identity-based like the Functions trigger: ``REVERT_QUEUE__queueServiceUri`` is both the trigger
connection's setting and our client's endpoint (the app identity holds Storage Queue Data Contributor).
Locally (``NSG_GUARD_AUTH=local``) the Azurite connection string is used. Messages are Base64 text, the
Functions host's default ``messageEncoding``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

from shared.app.config import Settings
from shared.azure.storage import blob_service, storage_errors
from shared.core.errors import ConfigError, TransientError

QUEUE_NAME = "nsg-guard-revert"
LEASE_SECONDS = 60


def queue_configured(settings: Settings) -> bool:
    conn = settings.storage_connection_string or ""
    return bool(settings.revert_queue_endpoint or (settings.local and "queueendpoint=" in conn.lower()))


def queue_client(settings: Settings, credential: Any) -> Any:
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    kwargs: dict[str, Any] = {"message_encode_policy": TextBase64EncodePolicy()}
    if settings.local and settings.storage_connection_string and not settings.revert_queue_endpoint:
        return QueueClient.from_connection_string(settings.storage_connection_string, QUEUE_NAME, **kwargs)
    if not settings.revert_queue_endpoint:
        raise ConfigError("the revert queue is not configured: set REVERT_QUEUE__queueServiceUri (the storage "
                          "account's queue endpoint; the app identity needs Storage Queue Data Contributor)")
    return QueueClient(settings.revert_queue_endpoint, QUEUE_NAME, credential=credential, **kwargs)


class StorageJobQueue:
    """:class:`shared.app.revertjobs.JobQueue` on the ``nsg-guard-revert`` queue (created on first use)."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def enqueue(self, job: dict[str, Any], delay_s: int = 0) -> None:
        """Send a job; ``delay_s`` > 0 keeps it invisible that long (a job held by the blast-radius window)."""
        from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

        text = json.dumps(job, separators=(",", ":"))
        delay = {"visibility_timeout": int(delay_s)} if delay_s > 0 else {}
        for attempt in (1, 2):
            try:
                with storage_errors(f"enqueue revert job for {job.get('nsgId')}"):
                    self._client.send_message(text, **delay)
                return
            except TransientError as exc:
                if attempt == 1 and isinstance(exc.__cause__, ResourceNotFoundError):
                    with contextlib.suppress(ResourceExistsError), storage_errors(f"create queue {QUEUE_NAME}"):
                        self._client.create_queue()
                    continue
                raise

    def close(self) -> None:
        self._client.close()


class BlobLeaseLocks:
    """:class:`shared.app.revertjobs.NsgLocks` as one blob per NSG with a 60 s lease; the blob's metadata keeps
    ``covered`` = when the last successful job started reading, so older jobs need no work."""

    def __init__(self, service: Any, container: str) -> None:
        self._container = service.get_container_client(container)
        self.container = container

    def _blob(self, nsg_id: str) -> Any:
        return self._container.get_blob_client(hashlib.sha256(nsg_id.lower().encode()).hexdigest()[:40])

    def acquire(self, nsg_id: str) -> BlobLease | None:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

        blob = self._blob(nsg_id)
        for attempt in (1, 2, 3):
            try:
                lease = blob.acquire_lease(lease_duration=LEASE_SECONDS)
                props = blob.get_blob_properties(lease=lease)
                return BlobLease(blob, lease, (props.metadata or {}).get("covered"))
            except ResourceNotFoundError:
                if attempt == 3:
                    raise TransientError(f"lock blob for {nsg_id} cannot be created") from None
                with contextlib.suppress(ResourceExistsError, HttpResponseError):
                    self._container.create_container()
                with contextlib.suppress(ResourceExistsError, HttpResponseError):
                    blob.upload_blob(b"", overwrite=False, metadata={"nsg": nsg_id[-200:].encode("ascii", "replace")
                                                                     .decode()})
            except HttpResponseError as exc:
                if exc.status_code == 409:  # LeaseAlreadyPresent: another job works on this NSG
                    return None
                raise TransientError(f"lock for {nsg_id}: HTTP {exc.status_code}") from exc
        return None


    def busy_since(self, nsg_id: str) -> datetime | None:
        """When the job holding the NSG's lease started reading (None: unknown)."""
        try:
            started = (self._blob(nsg_id).get_blob_properties().metadata or {}).get("started")
        except Exception:
            return None
        return datetime.fromisoformat(started) if started else None


class BlobLease:
    def __init__(self, blob: Any, lease: Any, covered: str | None) -> None:
        self._blob, self._lease = blob, lease
        self.covered = datetime.fromisoformat(covered) if covered else None

    def renew(self) -> None:
        with contextlib.suppress(Exception):
            self._lease.renew()

    def start(self, started: datetime) -> None:
        meta = {"started": started.astimezone(UTC).isoformat()}
        if self.covered is not None:
            meta["covered"] = self.covered.astimezone(UTC).isoformat()
        with storage_errors("record the lock's start time"):
            self._blob.set_blob_metadata(meta, lease=self._lease)

    def complete(self, started: datetime) -> None:
        with storage_errors("record the lock's covered time"):
            self._blob.set_blob_metadata({"covered": started.astimezone(UTC).isoformat()}, lease=self._lease)

    def release(self) -> None:
        with contextlib.suppress(Exception):
            self._lease.release()


def build_queue(settings: Settings, credential: Any) -> StorageJobQueue | None:
    return StorageJobQueue(queue_client(settings, credential)) if queue_configured(settings) else None


def build_locks(settings: Settings, credential: Any) -> BlobLeaseLocks:
    return BlobLeaseLocks(blob_service(settings, credential), settings.revert_lock_container)
