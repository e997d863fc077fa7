"""``fedrisk node serve``: the PreCheck gRPC server, with health checking, reflection, TLS.

- **Two processes**: this one, the front, runs gRPC on one asyncio event loop (``grpc.aio``)
  in a thread of its own, so the main thread keeps the signals; a check worker
  (:mod:`.precheckworker`) holds the history and checks the claims the front forwards. gRPC's
  own work per call and the check then use two cores instead of queueing for one interpreter
  lock (in one process, 2,000 claims/s gave p99 8–10 ms on 2 cores; docs/precheck.md,
  *Capacity*, has the runs since). The sync server's thread pool was slower still: it spent
  more than a check handing calls between threads.

- **Bounded**: at most ``max_pending`` calls in the server at once; the next is answered
  RESOURCE_EXHAUSTED at once instead of queueing without end, so an overloaded node stays
  responsive and the HIS can fall back (a reminder is advice, never a gate on care).
- **Deadlines**: gRPC cancels a call whose deadline passes; a claim that arrives already late is
  answered DEADLINE_EXCEEDED without being checked.
- **TLS** when a certificate and key are given; **mutual TLS** (client certificates signed by
  ``client_ca`` required) when a client CA is given as well.
- **Health** (``grpc.health.v1``) says SERVING once the history is loaded, NOT_SERVING while
  stopping or while a worker that died is replaced; **reflection** lets grpcurl and
  integrators list the service.
- **Graceful stop** on SIGTERM or SIGINT: no new calls, running ones get ``grace`` seconds,
  then the worker writes its queued audit entries and exits.
- **Reload** on SIGHUP: a new worker reads the history again from the store (after an ingest)
  and takes over between calls; the server keeps answering meanwhile.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from fedrisk.models.errors import FedriskError
from fedrisk.node.precheckfront import SERVICE, PreCheckService
from fedrisk.node.precheckwire import WorkerStart
from fedrisk.node.precheckworkers import Workers

__all__ = ["SERVICE", "Running", "TlsFiles", "WorkerStart", "serve_until_signalled", "start"]


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass
class Running:
    """A started server, the event-loop thread it runs on, and its check worker."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    workers: Workers
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    @property
    def worker_pid(self) -> int | None:
        """The process id of the check worker answering now (None while one restarts)."""
        current = self.workers.current
        return None if current is None else current.pid

    def reload(self) -> None:
        """Read the store's history again (e.g. after an ingest) and answer with it."""
        asyncio.run_coroutine_threadsafe(self.workers.reload(), self.loop).result()

    def stop(self, grace: float = 5.0) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(grace), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
        gc.unfreeze()  # what start froze may be collected again (a process that embeds it)

    async def _stop(self, grace: float) -> None:
        await _set_health(self.health, False)
        await self.server.stop(grace)
        await self.workers.close()


def start(
    source: WorkerStart,
    listen: str,
    tls: TlsFiles | None = None,
    max_pending: int = 64,
    service: type[PreCheckService] = PreCheckService,
) -> Running:
    """Start the check worker (it loads the history), then serve PreCheck on ``listen``
    (HOST:PORT; port 0 = any) from an asyncio event loop in a thread of its own; the caller's
    thread stays free for signals. Raises :class:`FedriskError` when the worker cannot start."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="precheck-loop", daemon=True)
    thread.start()
    try:
        started = asyncio.run_coroutine_threadsafe(
            _serve(source, service, listen, tls, max_pending), loop
        ).result()
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        raise
    server, port, health_servicer, workers = started
    # Everything loaded so far (gRPC, protobuf, this package: ~10^5 objects) lives as long as
    # the server. Left to the collector, its first full collection under load walks them all:
    # a pause of ~40 ms that every call then waiting pays. Frozen, they are never walked.
    gc.collect()
    gc.freeze()
    return Running(server, port, health_servicer, workers, loop, thread)


async def _serve(
    source: WorkerStart,
    service: type[PreCheckService],
    listen: str,
    tls: TlsFiles | None,
    max_pending: int,
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer, Workers]:
    """On the event loop: the worker, then the server with PreCheck, health and reflection."""
    health_servicer = health.aio.HealthServicer()
    workers = Workers(source, lambda up: _set_health(health_servicer, up))
    await workers.open()
    try:
        server = grpc.aio.server(maximum_concurrent_rpcs=max_pending)
        server.add_generic_rpc_handlers((service(workers).handler(),))
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), server
        )
        port = (
            server.add_secure_port(listen, _credentials(tls))
            if tls is not None
            else server.add_insecure_port(listen)
        )
        await server.start()
    except BaseException:
        await workers.close()
        raise
    return server, port, health_servicer, workers


async def _set_health(servicer: health.aio.HealthServicer, serving: bool) -> None:
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in (SERVICE, ""):
        await servicer.set(name, status)


def serve_until_signalled(running: Running, grace: float = 5.0) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully; reload the history on SIGHUP."""
    wake = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        wake.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    while True:
        wake.wait()
        wake.clear()
        if any(s != signal.SIGHUP for s in received):
            break
        received.clear()
        try:
            running.reload()
        except FedriskError as error:  # keep answering with the history already loaded
            print(f"reload refused, still serving the previous history: {error}", file=sys.stderr)
    running.stop(grace)


def _credentials(tls: TlsFiles) -> grpc.ServerCredentials:
    pair = [(tls.key.read_bytes(), tls.cert.read_bytes())]
    if tls.client_ca is None:
        return grpc.ssl_server_credentials(pair)
    return grpc.ssl_server_credentials(
        pair, root_certificates=tls.client_ca.read_bytes(), require_client_auth=True
    )
