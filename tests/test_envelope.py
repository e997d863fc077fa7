"""Sealed envelopes: only the named recipient, for the named purpose, from the named sender."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrisk.crypto.envelope import EnvelopeError, open_envelope, seal
from fedrisk.crypto.identity import Identity

SENDER = Identity.generate("KEYMAKER")
RECIPIENT = Identity.generate("H1")
OTHER = Identity.generate("H2")
SECRET = bytes(range(32))


def test_recipient_opens_what_was_sealed_for_it() -> None:
    envelope = seal(SENDER, RECIPIENT.public, "federation-secret", SECRET)
    opened = open_envelope(RECIPIENT, SENDER.public, "federation-secret", envelope)
    assert opened.payload == SECRET
    assert opened.sender == SENDER.public.fingerprint
    assert SECRET not in envelope


def test_each_envelope_is_fresh() -> None:
    first = seal(SENDER, RECIPIENT.public, "p", SECRET)
    second = seal(SENDER, RECIPIENT.public, "p", SECRET)
    assert first != second
    ids = {open_envelope(RECIPIENT, SENDER.public, "p", e).envelope_id for e in (first, second)}
    assert len(ids) == 2


def test_replayed_to_another_node_fails() -> None:
    envelope = seal(SENDER, RECIPIENT.public, "federation-secret", SECRET)
    with pytest.raises(EnvelopeError, match="addressed to node"):
        open_envelope(OTHER, SENDER.public, "federation-secret", envelope)


def test_wrong_purpose_fails() -> None:
    envelope = seal(SENDER, RECIPIENT.public, "federation-secret", SECRET)
    with pytest.raises(EnvelopeError, match="sealed for purpose"):
        open_envelope(RECIPIENT, SENDER.public, "he-context", envelope)


def test_unexpected_sender_fails() -> None:
    envelope = seal(OTHER, RECIPIENT.public, "federation-secret", SECRET)
    with pytest.raises(EnvelopeError, match="names sender"):
        open_envelope(RECIPIENT, SENDER.public, "federation-secret", envelope)


def test_empty_and_truncated_envelopes_fail() -> None:
    envelope = seal(SENDER, RECIPIENT.public, "p", SECRET)
    for damaged in (b"", envelope[:10], envelope[:-1], b"XXXX" + envelope[4:]):
        with pytest.raises(EnvelopeError):
            open_envelope(RECIPIENT, SENDER.public, "p", damaged)


ENVELOPE = seal(SENDER, RECIPIENT.public, "federation-secret", SECRET)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(ENVELOPE) - 1), st.integers(1, 255))
def test_any_changed_byte_fails(position: int, mask: int) -> None:
    damaged = bytearray(ENVELOPE)
    damaged[position] ^= mask
    with pytest.raises(EnvelopeError):
        open_envelope(RECIPIENT, SENDER.public, "federation-secret", bytes(damaged))
