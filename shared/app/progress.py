"""Progress on stderr for long work (scan of many files, sweep, replay): counts and rate, only on a terminal.

A single line rewritten in place at most a few times a second; nothing at all when stderr is a file or a
pipe (CI logs and redirected output stay clean).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO


class Progress:
    def __init__(self, what: str, *, stream: TextIO | None = None, enabled: bool | None = None,
                 clock: Callable[[], float] = time.monotonic, interval: float = 0.25) -> None:
        self.what = what
        self.stream = stream if stream is not None else sys.stderr
        isatty: Any = getattr(self.stream, "isatty", lambda: False)
        self.enabled = bool(isatty()) if enabled is None else enabled
        self.clock = clock
        self.interval = interval
        self.started = clock()
        self.last = float("-inf")
        self.count = 0
        self.shown = False

    def advance(self, n: int = 1, note: str = "") -> None:
        self.count += n
        if not self.enabled:
            return
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self._show(note)

    def _show(self, note: str) -> None:
        elapsed = max(self.clock() - self.started, 1e-9)
        text = f"{self.count} {self.what} ({self.count / elapsed:.0f}/s)" + (f", {note}" if note else "")
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self.shown = True

    def done(self) -> None:
        if self.enabled and self.shown:
            self._show("done")
            self.stream.write("\n")
            self.stream.flush()
