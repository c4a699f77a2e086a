"""The Functions host's queue trigger, for tests and the demo: receive messages from Storage (Azurite) with the
real ``azure-storage-queue`` client, hand each to a queue-triggered function as a ``func.QueueMessage`` with
its dequeue count, delete it on success, make it visible again on failure and move it to
``<queue>-poison`` after ``max_dequeue`` attempts — the host's documented behaviour."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class QueueRun:
    done: int = 0
    failed: int = 0
    poisoned: int = 0
    errors: list[str] = field(default_factory=list)


def drain(connection_string: str, queue: str, handler: Callable[[Any], None], *, workers: int = 1,
          max_dequeue: int = 5, visibility_timeout: int = 1, rounds: int = 50) -> QueueRun:
    """Process messages until the queue is empty (``workers`` concurrent receivers, like a scaled-out app)."""
    import time

    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
    from azure.functions.queue import QueueMessage  # what the worker builds for a queue trigger
    from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

    def client(name: str) -> Any:
        return QueueClient.from_connection_string(connection_string, name,
                                                  message_encode_policy=TextBase64EncodePolicy(),
                                                  message_decode_policy=TextBase64DecodePolicy())

    run = QueueRun()
    lock = threading.Lock()

    def worker() -> None:
        q, poison = client(queue), client(f"{queue}-poison")
        idle = 0
        for _ in range(rounds * 10):
            try:
                msgs = list(q.receive_messages(messages_per_page=1, visibility_timeout=visibility_timeout,
                                               max_messages=1))
            except ResourceNotFoundError:
                return
            if not msgs:
                idle += 1
                if idle > 3 and q.get_queue_properties().approximate_message_count == 0:
                    return
                time.sleep(0.2)
                continue
            idle = 0
            m = msgs[0]
            if m.dequeue_count > max_dequeue:
                with contextlib.suppress(ResourceExistsError):
                    poison.create_queue()
                poison.send_message(m.content)
                q.delete_message(m)
                with lock:
                    run.poisoned += 1
                continue
            message = QueueMessage(id=m.id, body=m.content.encode(), dequeue_count=m.dequeue_count,
                                        pop_receipt=m.pop_receipt)
            try:
                handler(message)
            except Exception as exc:  # the host logs and retries after the visibility timeout
                with lock:
                    run.failed += 1
                    run.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            q.delete_message(m)
            with lock:
                run.done += 1

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return run
