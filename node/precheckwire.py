"""The pipe between PreCheck's gRPC front and its check worker: typed frames on a socketpair.

Every frame is a code (one byte) and a body (a 4-byte little-endian length, then the bytes).

- front → worker: first a :data:`START` frame (:class:`WorkerStart` as JSON), then one
  :data:`CLAIM` frame per claim (:func:`claim_frame`): the call's deadline, then the ``Claim``
  message exactly as the HIS sent it (the worker parses it: the front never does).
- worker → front: first its start answer (``OK``, or why it could not start), then one answer
  per claim, in the order the claims came: a gRPC status code (``OK`` with the ``Verdict``'s
  bytes; otherwise the refusal's details in UTF-8).

What crosses it: both ends are processes of one node on one host, and the socketpair is made by
the front for its own child. A claim's raw patient ID crosses it in memory, as it crossed the
front; neither side writes it anywhere. The start frame carries the node key's passphrase when
the key has one, so that it never appears in a command line or an environment.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

import grpc

from fedrisk.node.access import Principal

HEADER = struct.Struct("<BI")
DEADLINE = struct.Struct("<d")  # a CLAIM body's first bytes: when the caller stops waiting
START = 1  # front → worker: the WorkerStart
CLAIM = 2  # front → worker: one claim
CODES = {code.value[0]: code for code in grpc.StatusCode}


@dataclass(frozen=True)
class WorkerStart:
    """What a worker needs to open the node as the server's principal, for purpose precheck."""

    home: Path
    principal: Principal
    purpose: str = "precheck"
    passphrase: bytes | None = None

    def encode(self) -> bytes:
        return json.dumps(
            {
                "home": str(self.home),
                "actor": self.principal.actor,
                "role": self.principal.role,
                "purpose": self.purpose,
                "passphrase": None if self.passphrase is None else self.passphrase.hex(),
            }
        ).encode()

    @staticmethod
    def decode(body: bytes) -> WorkerStart:
        data = json.loads(body)
        passphrase = data["passphrase"]
        return WorkerStart(
            Path(data["home"]),
            Principal(data["actor"], data["role"]),
            data["purpose"],
            None if passphrase is None else bytes.fromhex(passphrase),
        )


def frame(code: int, body: bytes) -> bytes:
    """One frame's bytes."""
    return HEADER.pack(code, len(body)) + body


def claim_frame(claim: bytes, deadline: float | None) -> bytes:
    """A claim's frame. ``deadline`` is the instant on ``time.monotonic()``'s clock after which
    its caller no longer waits for the answer (None: no deadline). Front and worker are
    processes of one host, so they read the same monotonic clock (Linux's CLOCK_MONOTONIC)."""
    return frame(CLAIM, DEADLINE.pack(math.inf if deadline is None else deadline) + claim)


def split_claim(body: bytes) -> tuple[float, bytes]:
    """A CLAIM frame's deadline (``math.inf`` for none) and the claim's bytes."""
    if len(body) < DEADLINE.size:
        raise ValueError(f"a claim frame of {len(body)} bytes has no deadline")
    return DEADLINE.unpack_from(body)[0], body[DEADLINE.size :]


def answer(code: grpc.StatusCode, body: bytes) -> bytes:
    """A worker's answer as a frame."""
    return frame(code.value[0], body)


def status(code: int) -> grpc.StatusCode:
    """The gRPC status of an answer's code (UNKNOWN for a number gRPC does not define)."""
    return CODES.get(code, grpc.StatusCode.UNKNOWN)


class FrameReader:
    """Whole frames out of a byte stream that arrives in pieces of any size."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """The frames that ``data`` completes, in order; a partial one is kept for later."""
        buffer = self._buffer + data if self._buffer else data
        frames = []
        at, end = 0, len(buffer)
        while end - at >= HEADER.size:
            code, length = HEADER.unpack_from(buffer, at)
            body = at + HEADER.size
            if end - body < length:
                break
            frames.append((code, buffer[body : body + length]))
            at = body + length
        self._buffer = buffer[at:]
        return frames

    @property
    def partial(self) -> bool:
        """True while part of a frame is waiting for the rest."""
        return bool(self._buffer)
