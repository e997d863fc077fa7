"""PreCheck's check worker: the process that holds the node's history and checks claims.

Why a process of its own: per call, gRPC's own work in the server (~0.3 ms of interpreter time
here) and the check (~0.1–0.2 ms, more with a model) would queue for one interpreter lock. The
gRPC front (``fedrisk node serve``) forwards each claim's bytes to this worker and answers the
HIS with what comes back, so the two run on two cores.

``python -m fedrisk.node.precheckworker FD`` is started by the front; FD is the worker's end of
a socketpair (the frames of :mod:`.precheckwire`). The worker reads its start, opens the node
as the server's principal, loads the checker and answers "ready" (or why it could not start);
then it answers every claim, in order, until the front closes the pipe; then it writes the
queued audit entries and exits. Every claim it checks is an audit entry (purpose ``precheck``)
written by this process, the one that reads the history. A claim whose caller's deadline has
passed by the time its turn comes is answered DEADLINE_EXCEEDED without being read: when calls
come faster than the worker checks them, it spends its time on calls someone still waits for,
not on a backlog nobody will read (the answer would be dropped by gRPC anyway).

It ignores SIGINT, SIGTERM and SIGHUP: the front decides when it stops. A Ctrl-C in a terminal
or systemd's SIGTERM to the whole group must not cut calls the front is still finishing.
"""

from __future__ import annotations

import signal
import socket
import sys
import time
import traceback

from grpc import StatusCode

from fedrisk.models.errors import FedriskError
from fedrisk.node.access import SiteAccess
from fedrisk.node.auditqueue import AuditQueue
from fedrisk.node.home import open_home
from fedrisk.node.precheck import Checker, answer_claim, load_checker
from fedrisk.node.precheckwire import CLAIM, START, FrameReader, WorkerStart, answer, split_claim

# Below malloc's mmap threshold (128 KiB): recv allocates a buffer of this size for every read,
# and at 1 MiB that cost the worker ~20 us of system time per claim (a claim is ~1 KB; a larger
# frame arrives over several reads).
READ_SIZE = 1 << 16
HOLD = 0.001  # s an answer may wait for the others of its read before it is sent
LATE = b"the call's deadline passed while it waited for the check; it was not checked"


class WireError(Exception):
    """The front sent something this worker does not understand."""


def main(argv: list[str]) -> int:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    with socket.socket(fileno=int(argv[0])) as link:
        reader = FrameReader()
        try:
            start = _start(link, reader)
            access = SiteAccess.open(
                open_home(start.home), start.principal, start.purpose, start.passphrase
            )
            checker = load_checker(access)
        except (FedriskError, WireError, OSError, ValueError) as error:
            link.sendall(answer(StatusCode.FAILED_PRECONDITION, str(error).encode()))
            return 1
        audit = AuditQueue(access.log)
        try:
            link.sendall(answer(StatusCode.OK, b""))
            _serve(link, reader, checker, audit)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the front is gone: nobody to answer, but the audit entries are still written
        finally:
            audit.close()
    return 0


def _start(link: socket.socket, reader: FrameReader) -> WorkerStart:
    """The start frame, the first the front sends."""
    while True:
        data = link.recv(READ_SIZE)
        if not data:
            raise WireError("the front closed the pipe before sending the start")
        frames = reader.feed(data)
        if frames:
            break
    code, body = frames[0]
    if code != START or len(frames) > 1:
        raise WireError("the front's first frame is not a start")
    return WorkerStart.decode(body)


def _serve(link: socket.socket, reader: FrameReader, checker: Checker, audit: AuditQueue) -> None:
    """Answer claims as they come, until end of stream. The answers to the claims of one read
    go back together, one write for many (the front is woken once), as soon as the oldest held
    has waited :data:`HOLD`: after a pause a read brings a backlog of tens of claims, and the
    first ones' callers need not wait for the last ones' checks."""
    while data := link.recv(READ_SIZE):
        held: list[bytes] = []
        since = time.monotonic()
        for code, body in reader.feed(data):
            held.append(_answer(checker, audit, code, body))
            if time.monotonic() - since >= HOLD:
                link.sendall(b"".join(held))
                held, since = [], time.monotonic()
        if held:
            link.sendall(b"".join(held))


def _answer(checker: Checker, audit: AuditQueue, code: int, body: bytes) -> bytes:
    if code != CLAIM:
        return answer(StatusCode.INTERNAL, b"the worker expected a claim frame")
    try:
        deadline, claim = split_claim(body)
        if time.monotonic() >= deadline:
            return answer(StatusCode.DEADLINE_EXCEEDED, LATE)
        return answer(*answer_claim(checker, audit, claim))
    except Exception as error:  # one bad check must not take every later call with it
        _log_failure(error)
        return answer(StatusCode.INTERNAL, b"the check failed; see the server's log")


def _log_failure(error: Exception) -> None:
    """Where a check failed, without the exception's message: it may quote the claim, which
    holds a raw patient ID, and the server's log must never."""
    where = "".join(traceback.format_list(traceback.extract_tb(error.__traceback__)))
    print(f"PreCheck: a check raised {type(error).__name__} at\n{where}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
