"""Fault injection per route kind.

Route kinds: ``arm.get``, ``arm.put``, ``arm.delete``, ``arm.list``, ``lro.poll``, ``graph``, ``ingest``.
A fault's ``kind`` may also be ``"*"`` (every request) or a prefix pattern like ``"arm.*"``.

Examples::

    azure.faults.add("arm.get", status=429, times=2, retry_after=1)        # throttle twice, then pass
    azure.faults.add("arm.put", status=429, code="RetryableErrorDueToAnotherOperation", retry_after=0.01)
    azure.faults.add("graph", status=503, times=1)
    azure.faults.add("ingest", drop=True)                                  # close the socket, no response
    azure.faults.add("arm.*", latency_ms=200, times=None)                  # slow forever
    azure.faults.add("arm.put", before=lambda azure, req: azure.bump_etag(req.nsg_id))   # changed under you
    azure.faults.reset()

Each matching request consumes one of a fault's ``times`` (``None`` = unlimited). Per request, faults are
applied in the order they were added: latency and ``before`` hooks accumulate; the first fault that produces a
response (``status``) or drops the connection ends the request (later faults are not consumed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_CODES = {
    429: (
        "TooManyRequests",
        "The request is being throttled as the limit has been reached for operation type.",
    ),
    500: (
        "InternalServerError",
        "Encountered internal server error. Diagnostic information: localazure fault.",
    ),
    502: ("BadGateway", "The gateway did not receive a response from the service."),
    503: ("ServiceUnavailable", "The service is currently unavailable. Please retry the request."),
    504: ("GatewayTimeout", "The gateway did not receive a response within the specified time period."),
    409: ("AnotherOperationInProgress", "Another operation on this or dependent resource is in progress."),
}


@dataclass
class RequestInfo:
    """What a fault predicate / hook gets to see about the request."""

    method: str
    path: str
    kind: str
    query: dict[str, str]
    body: bytes
    nsg_id: str | None = None  # ARM id of the NSG the request is about (ARM routes only)
    rule_name: str | None = None


@dataclass
class Fault:
    kind: str
    times: int | None = 1
    status: int | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    latency_ms: float = 0
    drop: bool = False
    before: Callable[[Any, RequestInfo], None] | None = None
    match: Callable[[RequestInfo], bool] | str | None = None
    hits: int = field(default=0)
    after: Callable[[Any, RequestInfo], None] | None = None  # runs once the response is computed (not sent)

    def matches(self, req: RequestInfo) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.kind != "*":
            if self.kind.endswith(".*"):
                if not req.kind.startswith(self.kind[:-1]):
                    return False
            elif self.kind != req.kind:
                return False
        if self.match is None:
            return True
        if isinstance(self.match, str):
            return self.match.lower() in req.path.lower()
        return bool(self.match(req))

    @property
    def terminal(self) -> bool:
        return self.drop or self.status is not None

    def error_body(self) -> dict[str, Any]:
        assert self.status is not None
        code, message = DEFAULT_CODES.get(self.status, ("InjectedFault", "Fault injected by localazure."))
        return {"error": {"code": self.code or code, "message": self.message or message}}


class FaultInjector:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(
        self,
        kind: str,
        *,
        status: int | None = None,
        times: int | None = 1,
        retry_after: float | None = None,
        code: str | None = None,
        message: str | None = None,
        latency_ms: float = 0,
        drop: bool = False,
        before: Callable[[Any, RequestInfo], None] | None = None,
        match: Callable[[RequestInfo], bool] | str | None = None,
    ) -> Fault:
        """Register a fault; returns it (``fault.hits`` counts how often it fired)."""
        f = Fault(
            kind=kind,
            times=times,
            status=status,
            code=code,
            message=message,
            retry_after=retry_after,
            latency_ms=latency_ms,
            drop=drop,
            before=before,
            match=match,
        )
        with self._lock:
            self._faults.append(f)
        return f

    # --- convenience wrappers ---
    def throttle(
        self, kind: str, times: int = 1, retry_after: float = 1, code: str = "TooManyRequests"
    ) -> Fault:
        return self.add(kind, status=429, times=times, retry_after=retry_after, code=code)

    def error(self, kind: str, status: int = 503, times: int = 1) -> Fault:
        return self.add(kind, status=status, times=times)

    def drop(self, kind: str, times: int = 1) -> Fault:
        return self.add(kind, drop=True, times=times)

    def latency(self, kind: str, ms: float, times: int | None = None) -> Fault:
        return self.add(kind, latency_ms=ms, times=times)

    def changed_under_you(
        self, hook: Callable[[Any, RequestInfo], None], kind: str = "arm.put", times: int = 1
    ) -> Fault:
        """Run ``hook(azure, request_info)`` when the next write arrives, before it is applied."""
        return self.add(kind, before=hook, times=times)

    def between_read_and_write(self, hook: Callable[[Any, RequestInfo], None], nth_read: int = 1,
                               nsg_id: str | None = None) -> Fault:
        """Run ``hook(azure, request_info)`` right after the ``nth_read``-th GET of an NSG has been answered
        (the reader holds the old state; the next write lands on the new one): a concurrent edit."""
        seen = {"n": 0}

        def nth(req: RequestInfo) -> bool:
            if req.rule_name is not None or (nsg_id and (req.nsg_id or "").lower() != nsg_id.lower()):
                return False
            seen["n"] += 1
            return seen["n"] == nth_read

        f = self.add("arm.get", match=nth, times=1)
        f.after = hook
        return f

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()

    @property
    def active(self) -> list[Fault]:
        with self._lock:
            return [f for f in self._faults if f.times is None or f.times > 0]

    def take(self, req: RequestInfo) -> list[Fault]:
        """Consume and return the faults that apply to ``req`` (at most one terminal fault, last in the "
        "list)."""
        taken: list[Fault] = []
        with self._lock:
            for f in self._faults:
                if not f.matches(req):
                    continue
                if f.times is not None:
                    f.times -= 1
                f.hits += 1
                taken.append(f)
                if f.terminal:
                    break
        return taken
