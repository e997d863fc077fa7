"""Key derivation per use and blind tokens per (job, window)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedrisk.crypto.canonical import encode_fields
from fedrisk.crypto.kdf import KeyUse, derive_key
from fedrisk.crypto.tokens import TOKEN_BYTES, blind_tokens, token_key

SECRET = bytes(32)


def test_each_use_and_context_gets_its_own_key() -> None:
    keys = {
        derive_key(SECRET, use, *context)
        for use in KeyUse
        for context in ((), ("job",), ("job", "2026-10"), ("job", "2026-11"))
    }
    assert len(keys) == len(KeyUse) * 4
    assert derive_key(SECRET, KeyUse.TOKEN, "a") == derive_key(SECRET, KeyUse.TOKEN, "a")


def test_secret_must_be_256_bits() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        derive_key(b"short", KeyUse.TOKEN)


def test_tokens_match_across_nodes_only_within_one_job_and_window() -> None:
    row = ("6901234567890123456789",)
    october = token_key(SECRET, "duplicate_trace_code", "2026-10")
    november = token_key(SECRET, "duplicate_trace_code", "2026-11")
    other_job = token_key(SECRET, "cross_site_over_quantity", "2026-10")
    site_a, site_b = blind_tokens(october, [row]), blind_tokens(october, [row])
    assert site_a == site_b and len(site_a[0]) == TOKEN_BYTES
    assert blind_tokens(november, [row]) != site_a
    assert blind_tokens(other_job, [row]) != site_a
    assert (
        blind_tokens(token_key(bytes([1] * 32), "duplicate_trace_code", "2026-10"), [row]) != site_a
    )


def test_canonical_encoding_normalises_what_should_match() -> None:
    key = token_key(SECRET, "job", "w")
    decomposed = "Zoe\u0301"  # e + combining acute accent
    composed = "Zo\u00e9"
    assert blind_tokens(key, [(decomposed,)]) == blind_tokens(key, [(composed,)])
    assert blind_tokens(key, [(" P001 ",)]) == blind_tokens(key, [("P001",)])
    assert blind_tokens(key, [("1",)]) != blind_tokens(key, [(1,)])


@given(
    st.lists(st.text(max_size=6).map(str.strip), min_size=1, max_size=3),
    st.lists(st.text(max_size=6).map(str.strip), min_size=1, max_size=3),
)
def test_field_boundaries_cannot_be_forged(a: list[str], b: list[str]) -> None:
    normal_a = [encode_fields([x]) for x in a]
    normal_b = [encode_fields([x]) for x in b]
    if normal_a != normal_b:
        assert encode_fields(a) != encode_fields(b)
