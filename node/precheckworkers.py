"""The front's side of PreCheck's check worker: starting it, talking to it, replacing it.

All of it runs on the front's event loop. A :class:`Worker` is one worker process and the
socketpair to it; claims are written to it as they come and their answers resolve futures in
the same order. :class:`Workers` holds the worker the front answers with:

- **reload** (SIGHUP, after an ingest): a new worker loads the history while the old one keeps
  answering; once the new one is ready it takes the next calls, and the old one finishes those
  it has, writes its audit entries and exits. A new worker that cannot start (the active model
  no longer verifies, say) is reported and the old one stays.
- **a worker that dies** fails the calls it had (UNAVAILABLE: the HIS retries or goes on
  without a reminder); health says NOT_SERVING until a replacement is ready, which is tried
  again with a growing pause while it fails to start.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Awaitable, Callable

from grpc import StatusCode

from fedrisk.models.errors import FedriskError
from fedrisk.node.precheckwire import START, FrameReader, WorkerStart, claim_frame, frame, status

Answer = tuple[StatusCode, bytes]
STOP_TIMEOUT = 30.0  # s a retiring worker gets to answer its calls and write its audit entries
RESTART_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # s before each try after a worker died


class WorkerLostError(FedriskError):
    """The check worker exited before answering (or none is running)."""


class WorkerStartError(FedriskError):
    """A new check worker could not open the node or load its history."""


class _Link(asyncio.Protocol):
    """The front's end of the socketpair: frames out, answers in, matched by order."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.hello: asyncio.Future[Answer] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.pending: deque[asyncio.Future[Answer]] = deque()
        self._reader = FrameReader()
        self._transport: asyncio.WriteTransport | None = None
        self._outbox: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        for code, body in self._reader.feed(data):
            if not self.hello.done():
                self.hello.set_result((status(code), body))
                continue
            waiting = self.pending.popleft()
            if not waiting.done():  # a cancelled call (deadline, client gone) is not answered
                waiting.set_result((status(code), body))

    def connection_lost(self, exc: Exception | None) -> None:
        lost = WorkerLostError("the check worker stopped before answering; retry the call")
        if not self.hello.done():
            self.hello.set_exception(lost)
        while self.pending:
            waiting = self.pending.popleft()
            if not waiting.done():
                waiting.set_exception(lost)
        if not self.closed.done():
            self.closed.set_result(None)

    def send(self, data: bytes) -> None:
        """Queue a frame's bytes, written with the others of this turn of the loop."""
        if self._transport is None or self._transport.is_closing():
            raise WorkerLostError("the check worker is not running; retry the call")
        if not self._outbox:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outbox.append(data)

    def ask(self, claim: bytes, deadline: float | None) -> asyncio.Future[Answer]:
        """Send a claim and its caller's deadline (on ``time.monotonic()``'s clock); the future
        of its answer."""
        self.send(claim_frame(claim, deadline))
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.pending.append(answer)
        return answer

    def _flush(self) -> None:
        # One write (one system call, one wake-up of the worker) for every claim that came in
        # the same turn of the loop, rather than one each.
        frames, self._outbox = self._outbox, []
        if frames and self._transport is not None and not self._transport.is_closing():
            self._transport.write(b"".join(frames))

    def close(self) -> None:
        """Close the pipe after the frames still queued (the worker then sees end of stream)."""
        self._flush()
        if self._transport is not None:
            self._transport.close()


class Worker:
    """One worker process, started and ready."""

    def __init__(self, process: subprocess.Popen[bytes], link: _Link) -> None:
        self.process = process
        self.link = link

    @property
    def pid(self) -> int:
        return self.process.pid

    @staticmethod
    async def spawn(start: WorkerStart) -> Worker:
        """Start a worker and return once it has loaded the history; raise
        :class:`WorkerStartError` with its reason when it cannot."""
        ours, theirs = socket.socketpair()
        with theirs:
            command = [sys.executable, "-m", "fedrisk.node.precheckworker", str(theirs.fileno())]
            process = await asyncio.to_thread(
                subprocess.Popen, command, pass_fds=(theirs.fileno(),), stdout=subprocess.DEVNULL
            )
        loop = asyncio.get_running_loop()
        try:
            _, link = await loop.create_unix_connection(_Link, sock=ours)
            worker = Worker(process, link)
            link.send(frame(START, start.encode()))
            code, reason = await link.hello
        except WorkerLostError:
            code, reason = StatusCode.UNKNOWN, b"the worker exited while starting"
        except BaseException:  # cancelled: the server stops, or a reload replaced a restart
            ours.close()
            process.kill()
            raise
        if code is not StatusCode.OK:
            await worker.stop()
            raise WorkerStartError(f"the check worker could not start: {reason.decode()}")
        return worker

    def check(self, claim: bytes, deadline: float | None) -> asyncio.Future[Answer]:
        return self.link.ask(claim, deadline)

    async def stop(self) -> None:
        """Close the pipe: the worker answers what it has, writes its audit entries and exits
        (killed if it has not within :data:`STOP_TIMEOUT`)."""
        self.link.close()
        try:
            await asyncio.to_thread(self.process.wait, STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)


class Workers:
    """The worker the front answers with; ``serving`` is told when it comes and goes."""

    def __init__(self, start: WorkerStart, serving: Callable[[bool], Awaitable[None]]) -> None:
        self._start = start
        self._serving = serving
        self.current: Worker | None = None
        self._restart: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self) -> None:
        """Start the first worker (raises :class:`WorkerStartError` when it cannot)."""
        self._use(await Worker.spawn(self._start))
        await self._serving(True)

    def check(self, claim: bytes, deadline: float | None) -> asyncio.Future[Answer]:
        """The future of the worker's answer to one claim's bytes, to be checked only if its
        ``deadline`` (``time.monotonic()``; None: none) has not passed when its turn comes (a
        future, not a coroutine: this is every call's path)."""
        if self.current is None:
            raise WorkerLostError("the check worker is restarting; retry the call")
        return self.current.check(claim, deadline)

    async def reload(self) -> None:
        """A new worker with the store's history as it is now; the old one retires once the new
        one is ready (raises :class:`WorkerStartError`, keeping the old one, when it cannot)."""
        fresh = await Worker.spawn(self._start)
        if self._restart is not None and not self._restart.done():
            self._restart.cancel()  # the new worker replaces a dead one as well
        old = self.current
        self._use(fresh)
        await self._serving(True)
        if old is not None:
            await old.stop()

    async def close(self) -> None:
        """Stop the worker (after its calls) and any restart under way."""
        self._closing = True
        if self._restart is not None:
            self._restart.cancel()
        worker, self.current = self.current, None
        if worker is not None:
            await worker.stop()

    def _use(self, worker: Worker) -> None:
        self.current = worker
        worker.link.closed.add_done_callback(lambda _: self._lost(worker))

    def _lost(self, worker: Worker) -> None:
        """A worker's pipe closed: if it was the current one, replace it."""
        if worker is not self.current or self._closing:
            return  # a retired worker, or the server is stopping
        self.current = None
        print(
            f"PreCheck: the check worker (pid {worker.pid}) stopped; starting another",
            file=sys.stderr,
        )
        self._restart = asyncio.get_running_loop().create_task(self._replace(worker))

    async def _replace(self, dead: Worker) -> None:
        await self._serving(False)
        await asyncio.to_thread(dead.process.wait)
        for attempt in itertools.count():
            await asyncio.sleep(RESTART_DELAYS[min(attempt, len(RESTART_DELAYS) - 1)])
            try:
                self._use(await Worker.spawn(self._start))
            except WorkerStartError as error:
                print(f"PreCheck: {error}; trying again", file=sys.stderr)
                continue
            await self._serving(True)
            return
