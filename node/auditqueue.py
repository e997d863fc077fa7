"""Group commit for a service's audit entries: many calls a second, one signed head per group.

Each PreCheck call is an audit entry. Appending one entry costs an fsync and a signature
(~1 ms here), more than the call itself; the queue collects entries from every worker thread
and a single writer appends all that are waiting (up to ``batch``) as one commit, then the next
group — so the busier the service, the larger the groups. On shutdown :meth:`close` writes
whatever is left.
"""

from __future__ import annotations

import queue
import threading

from fedrisk.node.auditlog import AuditLog, AuditRecord

_STOP = object()


class AuditQueue:
    def __init__(self, log: AuditLog, interval: float = 0.05, batch: int = 2000) -> None:
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
            pending: list[AuditRecord] = []
            markers: list[threading.Event] = []
            try:
                item = self._queue.get(timeout=self._interval)
                while True:
                    if item is _STOP:
                        stopping = True
                        break
                    if isinstance(item, threading.Event):
                        markers.append(item)
                    else:
                        assert isinstance(item, AuditRecord)
                        pending.append(item)
                    if len(pending) >= self._batch:
                        break
                    item = self._queue.get_nowait()
            except queue.Empty:
                pass
            if pending:
                self._log.append(pending)
            for marker in markers:
                marker.set()
