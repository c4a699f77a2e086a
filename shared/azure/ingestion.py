"""azure-monitor-ingestion adapter: send table rows to the DCR stream, reporting exactly what failed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shared.app.config import Settings
from shared.azure.apiversions import LOGS_INGESTION
from shared.azure.credentials import client_kwargs, scope
from shared.azure.errors import azure_errors
from shared.core.errors import TransientError


class IngestionFailed(TransientError):
    """Some rows were not accepted after the SDK's retries; ``failed_rows`` are exactly those rows."""

    def __init__(self, message: str, failed_rows: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.failed_rows = failed_rows


class LogsIngestionSink:
    def __init__(self, settings: Settings, credential: Any, **client_options: Any) -> None:
        endpoint, self._rule_id, self._stream = settings.require_ingestion()
        from azure.monitor.ingestion import LogsIngestionClient

        self._client = LogsIngestionClient(endpoint=endpoint, credential=credential, api_version=LOGS_INGESTION,
                                           credential_scopes=[scope(settings.logs_audience)],
                                           **client_kwargs(settings), **client_options)
        self.calls = 0

    def send(self, rows: Sequence[dict[str, Any]]) -> None:
        """Upload rows (the SDK splits them into gzip chunks of at most 1 MB and retries each)."""
        if not rows:
            return
        failed: list[dict[str, Any]] = []
        errors: list[str] = []

        def on_error(error: Any) -> None:
            failed.extend(error.failed_logs)
            errors.append(f"{type(error.error).__name__}: {getattr(error.error, 'status_code', '')}")

        self.calls += 1
        with azure_errors(f"upload to {self._stream}"):
            self._client.upload(self._rule_id, self._stream, list(rows), on_error=on_error)
        if failed:
            raise IngestionFailed(f"{len(failed)} of {len(rows)} rows not accepted by {self._stream} "
                                  f"({'; '.join(sorted(set(errors)))})", failed)

    def close(self) -> None:
        self._client.close()
