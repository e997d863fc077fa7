"""``fedrisk node serve``: the PreCheck gRPC server, with health checking, reflection, TLS.

- **One asyncio event loop** (``grpc.aio``) answers every call, in a thread of its own so the
  main thread keeps the signals. A check is ~0.1 ms of Python: the sync server's thread pool
  spent more than that handing calls between threads; the loop serves ~1.5× the rate on the
  same CPU (``bench/precheck_load.py``).

- **Bounded**: at most ``max_pending`` calls in the server at once; the next is answered
  RESOURCE_EXHAUSTED at once instead of queueing without end, so an overloaded node stays
  responsive and the HIS can fall back (a reminder is advice, never a gate on care).
- **Deadlines**: gRPC cancels a call whose deadline passes; a claim that arrives already late is
  answered DEADLINE_EXCEEDED without being checked.
- **TLS** when a certificate and key are given; **mutual TLS** (client certificates signed by
  ``client_ca`` required) when a client CA is given as well.
- **Health** (``grpc.health.v1``) says SERVING once the history is loaded, NOT_SERVING while
  stopping; **reflection** lets grpcurl and integrators list the service.
- **Graceful stop** on SIGTERM or SIGINT: no new calls, running ones get ``grace`` seconds,
  queued audit entries are written.
- **Reload** on SIGHUP: the history is read again from the store (after an ingest) and
  replaces the old one between calls; the server keeps answering meanwhile.
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
from fedrisk.node import registry
from fedrisk.node.access import SiteAccess
from fedrisk.node.auditqueue import AuditQueue
from fedrisk.node.history import load_history
from fedrisk.node.precheck import Checker, PreCheckService, Scorer
from fedrisk.protos.fedrisk.v1 import precheck_pb2, precheck_pb2_grpc

SERVICE = precheck_pb2.DESCRIPTOR.services_by_name["PreCheckService"].full_name


@dataclass(frozen=True)
class TlsFiles:
    cert: Path
    key: Path
    client_ca: Path | None = None


@dataclass
class Running:
    """A started server, the event-loop thread it runs on, and what must be stopped with it."""

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    audit: AuditQueue
    service: PreCheckService
    access: SiteAccess
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread

    def reload(self) -> None:
        """Read the store's history again (e.g. after an ingest) and answer with it."""
        self.service.replace(_checker(self.access))

    def stop(self, grace: float = 5.0) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(grace), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()
        self.audit.close()
        gc.unfreeze()  # what _checker froze may be collected again

    async def _stop(self, grace: float) -> None:
        for name in (SERVICE, ""):
            await self.health.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.stop(grace)


def start(
    access: SiteAccess,
    listen: str,
    tls: TlsFiles | None = None,
    max_pending: int = 64,
    service: type[PreCheckService] = PreCheckService,
) -> Running:
    """Load the history, then serve PreCheck on ``listen`` (HOST:PORT; port 0 = any) from an
    asyncio event loop in a thread of its own; the caller's thread stays free for signals."""
    servicer = service(_checker(access), AuditQueue(access.log))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="precheck-loop", daemon=True)
    thread.start()
    try:
        started = asyncio.run_coroutine_threadsafe(
            _serve(servicer, listen, tls, max_pending), loop
        ).result()
    except BaseException:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
        servicer.audit.close()
        raise
    server, port, health_servicer = started
    return Running(server, port, health_servicer, servicer.audit, servicer, access, loop, thread)


async def _serve(
    servicer: PreCheckService, listen: str, tls: TlsFiles | None, max_pending: int
) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """On the event loop: the server with PreCheck, health and reflection, started."""
    server = grpc.aio.server(maximum_concurrent_rpcs=max_pending)
    add_servicer = precheck_pb2_grpc.add_PreCheckServiceServicer_to_server  # generated, untyped
    add_servicer(servicer, server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()
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
    for name in (SERVICE, ""):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, port, health_servicer


def _checker(access: SiteAccess) -> Checker:
    """The rules' history and, when a model is active, the model with its aggregates."""
    home = access.home
    bundle = registry.active(access)
    loaded = load_history(access, with_features=bundle is not None)
    scorer = None
    if bundle is not None and loaded.features is not None:
        scorer = Scorer(bundle, bundle.booster(), loaded.features)
    kb, pack, key = home.knowledge_base(), home.rule_pack(), home.secret("pseudonym")
    checker = Checker(access, kb, pack, loaded.history, key, scorer)
    # The history is millions of long-lived objects: left to the collector, each full collection
    # walks them all, a pause of tens of ms in the middle of some call. Freezing moves them out.
    gc.collect()
    gc.freeze()
    return checker


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
