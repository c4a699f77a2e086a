"""The rolling blast-radius window of revert jobs, durable in Blob Storage beside the per-NSG leases.

One small JSON blob (``blast-radius-window.json`` in ``REVERT_LOCK_CONTAINER``) lists which NSGs revert jobs
wrote in the last ``REVERT_WINDOW_SECONDS``; every job instance reads it and writes it back with ``If-Match``
on its ETag, so concurrent jobs on several instances never lose or double a slot (a 412 re-reads and retries).
The decision itself is :func:`shared.core.blastradius.take` (pure).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from datetime import datetime, timedelta
from typing import Any

from shared.app.config import Settings
from shared.azure.storage import blob_service, storage_errors
from shared.core.blastradius import Slot, take, window_from_json, window_to_json
from shared.core.errors import InputError, TransientError

log = logging.getLogger("nsg_guard.runwindow")
WINDOW_BLOB = "blast-radius-window.json"
MAX_TRIES = 10


class BlobRunWindow:
    """:class:`shared.app.revertjobs.RunWindow` on one blob, updated with optimistic concurrency."""

    def __init__(self, service: Any, container: str, cap: int, window: timedelta) -> None:
        self._container = service.get_container_client(container)
        self._blob = self._container.get_blob_client(WINDOW_BLOB)
        self.cap, self.window = cap, window

    def take(self, nsg_id: str, now: datetime) -> Slot:
        """Count ``nsg_id`` in the window, or say until when it is held. Raises TransientError."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        for attempt in range(MAX_TRIES):
            entries, etag = self._read()
            slot = take(entries, nsg_id, now, self.cap, self.window)
            if not slot.granted or (len(slot.entries) == len(entries) and set(slot.entries) == set(entries)):
                return slot  # held, or this NSG already holds a slot: nothing to store
            body = window_to_json(slot.entries)
            try:
                with storage_errors("store the blast-radius window"):
                    try:
                        if etag is None:
                            self._blob.upload_blob(body, overwrite=False)
                        else:
                            self._blob.upload_blob(body, overwrite=True, etag=etag,
                                                   match_condition=MatchConditions.IfNotModified)
                    except ResourceNotFoundError:  # the container is gone: create it and try again
                        with contextlib.suppress(ResourceExistsError):
                            self._container.create_container()
                        raise ResourceModifiedError("container created") from None
                return slot
            except TransientError as exc:
                if not isinstance(exc.__cause__, ResourceModifiedError | ResourceExistsError):
                    raise
                time.sleep(random.uniform(0.01, 0.05 * (attempt + 1)))  # another job stored first: re-read
        raise TransientError(f"blast-radius window: still contended after {MAX_TRIES} tries")

    def _read(self) -> tuple[dict[str, datetime], str | None]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            with storage_errors("read the blast-radius window"):
                try:
                    download = self._blob.download_blob()
                except ResourceNotFoundError:
                    return {}, None
                data, etag = download.readall(), download.properties.etag
        except TransientError:
            raise
        try:
            return window_from_json(data), etag
        except InputError as exc:  # our own state, damaged: start a new window rather than hold every job
            log.error("blast-radius window %s is unreadable (%s): starting a new window", WINDOW_BLOB, exc)
            return {}, etag


def build_window(settings: Settings, credential: Any) -> BlobRunWindow:
    return BlobRunWindow(blob_service(settings, credential), settings.revert_lock_container,
                         settings.revert_max_nsgs_per_window, timedelta(seconds=settings.revert_window_seconds))
