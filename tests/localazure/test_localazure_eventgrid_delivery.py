"""The Event Grid stand-in's push delivery: a handler slower than the delivery timeout (30 s in Azure) is
redelivered while the first attempt still runs — the overlap that made slow reverts write twice."""

from __future__ import annotations

import threading
import time

from localazure.eventgrid import deliver_with_timeout


def test_slow_handler_is_redelivered_while_the_first_attempt_still_runs():
    running, peak, lock = [0], [0], threading.Lock()

    def slow(event):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.6)
        with lock:
            running[0] -= 1

    stats = deliver_with_timeout({"id": "e"}, slow, timeout_s=0.2, max_attempts=3)
    assert stats["attempts"] == 3 and stats["timeouts"] == 3 and peak[0] >= 2


def test_failing_handler_is_retried_and_a_fast_one_is_delivered_once():
    calls = []

    def flaky(event):
        calls.append(event["id"])
        if len(calls) == 1:
            raise RuntimeError("transient")

    assert deliver_with_timeout({"id": "e"}, flaky, timeout_s=5) == {"attempts": 2, "timeouts": 0, "errors": 1,
                                                                      "ok": 1}
    assert deliver_with_timeout({"id": "f"}, lambda e: None, timeout_s=5)["attempts"] == 1
