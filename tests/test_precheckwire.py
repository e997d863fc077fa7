"""The frames between PreCheck's front and its check worker."""

from __future__ import annotations

import math
from pathlib import Path

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedrisk.node.access import Principal
from fedrisk.node.precheckwire import (
    CLAIM,
    FrameReader,
    WorkerStart,
    answer,
    claim_frame,
    frame,
    split_claim,
    status,
)

bodies = st.lists(st.binary(max_size=300), max_size=20)


@given(bodies, st.lists(st.integers(min_value=1, max_value=64), min_size=1))
def test_frames_come_out_whole_and_in_order_however_the_stream_is_cut(
    sent: list[bytes], cuts: list[int]
) -> None:
    stream = b"".join(frame(CLAIM, body) for body in sent)
    reader, received, at, i = FrameReader(), [], 0, 0
    while at < len(stream):
        size = cuts[i % len(cuts)]
        received += reader.feed(stream[at : at + size])
        at, i = at + size, i + 1
    assert received == [(CLAIM, body) for body in sent]
    assert not reader.partial


def test_an_answer_carries_its_grpc_status() -> None:
    (code, body), *_ = FrameReader().feed(answer(grpc.StatusCode.INVALID_ARGUMENT, b"x"))
    assert (status(code), body) == (grpc.StatusCode.INVALID_ARGUMENT, b"x")
    assert status(250) == grpc.StatusCode.UNKNOWN  # a number gRPC does not define


def test_a_worker_start_survives_the_pipe() -> None:
    for passphrase in (None, b"", "口令 with spaces".encode()):
        start = WorkerStart(Path("/srv/node"), Principal("his", "precheck"), "precheck", passphrase)
        assert WorkerStart.decode(start.encode()) == start


@given(st.binary(max_size=300), st.none() | st.floats(min_value=0, max_value=1e9))
def test_a_claim_frame_carries_the_claim_and_its_deadline(
    claim: bytes, deadline: float | None
) -> None:
    ((code, body),) = FrameReader().feed(claim_frame(claim, deadline))
    assert code == CLAIM
    assert split_claim(body) == (math.inf if deadline is None else deadline, claim)


def test_a_claim_frame_too_short_for_its_deadline_is_refused() -> None:
    with pytest.raises(ValueError, match="has no deadline"):
        split_claim(b"1234567")
