"""The check worker's loop: how the answers to a backlog go back to the front."""

from __future__ import annotations

import time

import pytest

from fedrisk.node import precheckworker
from fedrisk.node.precheckwire import CLAIM, FrameReader, frame

CHECK_SECONDS = 0.0005


class _Pipe:
    """The worker's end of the socketpair: one read holding every claim, then end of stream."""

    def __init__(self, data: bytes) -> None:
        self._reads = [data, b""]
        self.writes: list[bytes] = []

    def recv(self, size: int) -> bytes:
        return self._reads.pop(0)

    def sendall(self, data: bytes) -> None:
        self.writes.append(data)


def _slow_answer(checker: object, audit: object, code: int, body: bytes) -> bytes:
    time.sleep(CHECK_SECONDS)  # at least: a check of ~0.5 ms
    return frame(code, body)


def test_a_backlog_s_answers_go_back_in_pieces_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """20 claims in one read, 0.5 ms or more each: answers held at most ~HOLD (1 ms), so in
    several writes, not one after the last check; all of them, in order."""
    monkeypatch.setattr(precheckworker, "_answer", _slow_answer)
    claims = [f"claim {n}".encode() for n in range(20)]
    pipe = _Pipe(b"".join(frame(CLAIM, claim) for claim in claims))
    precheckworker._serve(pipe, FrameReader(), None, None)  # type: ignore[arg-type]
    answered = FrameReader().feed(b"".join(pipe.writes))
    assert [body for _, body in answered] == claims
    assert len(pipe.writes) >= 4, f"{len(pipe.writes)} writes for 20 answers"
    most = max(len(FrameReader().feed(write)) for write in pipe.writes)
    assert most <= 1 + precheckworker.HOLD / CHECK_SECONDS, most
