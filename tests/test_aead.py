"""crypto/aead.py: each value sealed on its own, with its own random nonce."""

from __future__ import annotations

import os

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from fedrisk.crypto.aead import NONCE_BYTES, decrypt, encrypt_many


@given(st.lists(st.tuples(st.binary(max_size=40), st.binary(max_size=40)), max_size=30))
def test_every_sealed_value_opens_with_its_own_associated_data(
    items: list[tuple[bytes, bytes]],
) -> None:
    key = os.urandom(32)
    sealed = encrypt_many(key, items)
    assert len(sealed) == len(items)
    for (plaintext, associated_data), value in zip(items, sealed, strict=True):
        assert decrypt(key, value, associated_data) == plaintext


def test_nonces_differ_between_values_and_between_calls() -> None:
    key = os.urandom(32)
    items = [(b"330106198212025792", b"patient")] * 5_000
    nonces = [s[:NONCE_BYTES] for s in encrypt_many(key, items) + encrypt_many(key, items)]
    assert len(set(nonces)) == len(nonces)


def test_a_value_moved_to_another_row_does_not_open() -> None:
    key = os.urandom(32)
    first, _ = encrypt_many(key, [(b"D0000004B", b"doctor\0a"), (b"D0000005C", b"doctor\0b")])
    with pytest.raises(InvalidTag):
        decrypt(key, first, b"doctor\0b")
