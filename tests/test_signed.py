"""Signed federation messages: the named sender, the named step, once."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrisk.crypto.identity import Identity
from fedrisk.crypto.signed import (
    ReplayGuard,
    SignedMessageError,
    sender_of,
    sign_message,
    verify_message,
)

NODE = Identity.generate("H1")
OTHER = Identity.generate("H2")
CONTEXT = "federation=demo epoch=1 run=7 round=2"
PAYLOAD = b"sealed trees, opaque to the relay"
MESSAGE = sign_message(NODE, "trees", CONTEXT, PAYLOAD)


def test_a_signed_message_verifies_once() -> None:
    guard = ReplayGuard()
    verified = verify_message(MESSAGE, NODE.public, "trees", CONTEXT, guard)
    assert verified.payload == PAYLOAD
    assert verified.sender == NODE.public.fingerprint == sender_of(MESSAGE)
    with pytest.raises(SignedMessageError, match="already received"):
        verify_message(MESSAGE, NODE.public, "trees", CONTEXT, guard)


def test_each_message_has_its_own_id() -> None:
    guard = ReplayGuard()
    for _ in range(2):  # the same payload sent twice is two messages, not a replay
        message = sign_message(NODE, "trees", CONTEXT, PAYLOAD)
        verify_message(message, NODE.public, "trees", CONTEXT, guard)
    assert len(guard.seen) == 2


def test_a_message_from_an_earlier_round_is_refused() -> None:
    with pytest.raises(SignedMessageError, match="replayed from another run or round"):
        verify_message(MESSAGE, NODE.public, "trees", CONTEXT + "x", ReplayGuard())


def test_a_message_of_another_kind_is_refused() -> None:
    with pytest.raises(SignedMessageError, match="not 'histograms'"):
        verify_message(MESSAGE, NODE.public, "histograms", CONTEXT, ReplayGuard())


def test_a_message_claimed_by_another_node_is_refused() -> None:
    with pytest.raises(SignedMessageError, match="is not from H2"):
        verify_message(MESSAGE, OTHER.public, "trees", CONTEXT, ReplayGuard())


def test_a_forged_signature_is_refused() -> None:
    # OTHER signs a message naming NODE as sender: the header is right, the signature is not.
    forged = sign_message(OTHER, "trees", CONTEXT, PAYLOAD)
    forged = forged.replace(OTHER.public.fingerprint.encode(), NODE.public.fingerprint.encode())
    with pytest.raises(SignedMessageError, match="signature does not verify"):
        verify_message(forged, NODE.public, "trees", CONTEXT, ReplayGuard())


@pytest.mark.parametrize("message", [PAYLOAD, b"", MESSAGE[:-1], MESSAGE[:20]])
def test_unsigned_or_truncated_messages_are_refused(message: bytes) -> None:
    with pytest.raises(SignedMessageError):
        verify_message(message, NODE.public, "trees", CONTEXT, ReplayGuard())


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(MESSAGE) - 1), st.integers(1, 255))
def test_any_changed_byte_is_refused(position: int, flip: int) -> None:
    changed = bytearray(MESSAGE)
    changed[position] ^= flip
    with pytest.raises(SignedMessageError):
        verify_message(bytes(changed), NODE.public, "trees", CONTEXT, ReplayGuard())
