"""Group commit for a service's audit entries: many calls a second, one signed head per group.

Each PreCheck call is an audit entry. Appending one entry costs an fsync and a signature
(~1 ms here), more than the call itself; the queue collects entries from every worker thread
and a single writer, once an entry arrives, sleeps ``interval`` seconds and then appends what
is waiting (up to ``batch`` entries) as one commit: at most 1/``interval`` commits a second,
however busy the service, and one wake-up per commit rather than per entry. An entry is on disk
within ``interval`` (plus one commit) of its call; a flush or a stop is answered at once when
nothing is waiting; on shutdown :meth:`close` writes whatever is left.
"""

from __future__ import annotations

import queue
import threading
import time

from fedrisk.node.auditlog import AuditLog, AuditRecord, LogWriter

_STOP = object()


class AuditQueue:
    def __init__(self, log: AuditLog, interval: float = 0.02, batch: int = 5000) -> None:
        self._log = log
        self._interval = interval
        self._batch = batch
        self._queue: queue.Queue[object] = queue.Queue()
        self._writer = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._writer.start()

    def submit(self, record: AuditRecord) -> None:
        self._queue.put(record)

    def flush(self, timeout: float = 10.0) -> None:
        """Return once every entry submitted before the call is in the log."""
        written = threading.Event()
        self._queue.put(written)
        written.wait(timeout)

    def close(self) -> None:
        """Write every queued entry, then stop the writer."""
        self._queue.put(_STOP)
        self._writer.join()

    def _run(self) -> None:
        with self._log.writer() as writer:
            self._commit_until_stopped(writer)

    def _commit_until_stopped(self, writer: LogWriter) -> None:
        stopping = False
        while not stopping:
            items = [self._queue.get()]
            if not isinstance(items[0], threading.Event) and items[0] is not _STOP:
                # Sleep the interval, then take everything at once: waking for each entry
                # would take the GIL from the service thousands of times a second.
                time.sleep(self._interval)
            items += _drain(self._queue, self._batch)
            pending = [i for i in items if isinstance(i, AuditRecord)]
            stopping = any(i is _STOP for i in items)
            if pending:
                writer.append(pending)
            for marker in items:
                if isinstance(marker, threading.Event):
                    marker.set()


def _drain(waiting: queue.Queue[object], limit: int) -> list[object]:
    """Up to ``limit`` items already in the queue, without blocking."""
    items: list[object] = []
    while len(items) < limit:
        try:
            items.append(waiting.get_nowait())
        except queue.Empty:
            break
    return items
