"""Encrypted slot sums: exact, sign-only after masking, other nodes' slots unreadable."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedrisk.crypto import blindsum, he

NODE = he.new_context(he.BFV)
COORDINATOR = he.load_context(he.export_public(NODE))


def _sum(columns: list[np.ndarray], positions: np.ndarray) -> blindsum.ts.BFVVector:
    parts = [blindsum.encrypt_slots(NODE, positions, c)[0] for c in columns]
    return blindsum.add(COORDINATOR, parts)


def test_a_sum_decrypts_exactly_and_the_coordinator_cannot_decrypt() -> None:
    positions = np.arange(5, dtype=np.int64)
    a = np.array([3, 0, blindsum.CAP, 7, 1], np.int64)
    b = np.array([4, 9, blindsum.CAP, -7, 0], np.int64)
    total = _sum([a, b], positions)
    with pytest.raises(ValueError):
        total.decrypt()
    read = blindsum.decrypt_slots(NODE, total.serialize(), positions)
    assert read.tolist() == (a + b).tolist()


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
        min_size=1,
        max_size=20,
    )
)
def test_the_mask_keeps_exactly_the_sign_of_sum_minus_limit(
    rows: list[tuple[int, int, int]],
) -> None:
    positions = np.arange(len(rows), dtype=np.int64)
    a, b, limit = (np.array(col, np.int64) for col in zip(*rows, strict=True))
    total = _sum([a - limit, b], positions)
    masked = blindsum.mask_sign(total, contributors=2)
    read = blindsum.decrypt_slots(NODE, masked.serialize(), positions)
    assert ((read > 0) == (a + b - limit > 0)).all()


def test_masked_values_do_not_repeat_the_sum() -> None:
    positions = np.zeros(1, np.int64)
    total = _sum([np.array([500], np.int64), np.array([600], np.int64)], positions)
    reads = {
        int(blindsum.decrypt_slots(NODE, blindsum.mask_sign(total, 2).serialize(), positions)[0])
        for _ in range(5)
    }
    assert len(reads) == 5 and all(r > 0 for r in reads)  # a fresh factor each time


def test_a_node_reads_noise_in_slots_that_are_not_its_own() -> None:
    positions = np.arange(blindsum.SLOTS, dtype=np.int64)
    total = _sum([np.full(blindsum.SLOTS, 5, np.int64)], positions)
    kept = blindsum.keep_only(total, np.array([0, 1], np.int64))
    read = blindsum.decrypt_slots(NODE, kept, positions)
    assert read[:2].tolist() == [5, 5]
    others = read[2:]
    assert (others != 5).mean() > 0.999 and len(np.unique(others)) > len(others) - 5


def test_values_beyond_the_cap_are_refused() -> None:
    with pytest.raises(blindsum.BlindSumError):
        blindsum.encrypt_slots(NODE, np.zeros(1, np.int64), np.array([blindsum.CAP + 1]))
    with pytest.raises(blindsum.BlindSumError):
        blindsum.mask_sign(_sum([np.zeros(1, np.int64)], np.zeros(1, np.int64)), 0)


def test_each_chunk_is_its_own_ciphertext() -> None:
    positions = np.array([1, blindsum.SLOTS + 2, 3 * blindsum.SLOTS], np.int64)
    sealed = blindsum.encrypt_slots(NODE, positions, np.array([1, 2, 3], np.int64))
    assert sorted(sealed) == [0, 1, 3]
