"""Group commit for a service's audit entries: many calls a second, one signed head per group.

Each PreCheck call is an audit entry. Appending one entry costs an fsync and a signature
(~1 ms here), more than the call itself; the queue collects entries from every worker thread
and a single writer, once an entry arrives, gathers entries for ``interval`` seconds (or until
``batch`` are waiting) and appends them as one commit: at most 1/``interval`` commits a second,
however busy the service. An entry is on disk within ``interval`` (plus one commit) of its call;
on shutdown :meth:`close` writes whatever is left.
"""

from __future__ import annotations

import queue
import threading
import time

from fedrisk.node.auditlog import AuditLog, AuditRecord

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
        stopping = False
        while not stopping:
            first = self._queue.get()
            deadline = time.monotonic() + self._interval
            pending: list[AuditRecord] = []
            markers: list[threading.Event] = []
            item: object = first
            while True:
                if item is _STOP:
                    stopping = True
                elif isinstance(item, threading.Event):
                    markers.append(item)
                else:
                    assert isinstance(item, AuditRecord)
                    pending.append(item)
                left = deadline - time.monotonic()
                if stopping or markers or len(pending) >= self._batch or left <= 0:
                    break  # a flush or a stop is answered at once
                try:
                    item = self._queue.get(timeout=left)
                except queue.Empty:
                    break
            if pending:
                self._log.append(pending)
            for marker in markers:
                marker.set()
