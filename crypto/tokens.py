"""Blind tokens: what a node sends to the coordinator instead of an identifier.

``token = HMAC-SHA256(K_job_window, encode_fields(key fields))[:16]`` with
``K_job_window = HKDF(federation secret, "fedrisk/v1/token", job, window)``.

What the coordinator learns from tokens: which tokens two nodes have in common within one job
and window (equal keys give equal tokens), and how many each node sent — nothing about the
values behind them, as it lacks the key. Tokens of different jobs or windows are unrelated, so
the coordinator cannot follow a patient from one job or month to the next.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence

from fedrisk.crypto.canonical import encode_fields
from fedrisk.crypto.kdf import KeyUse, derive_key

TOKEN_BYTES = 16  # 128 bits: no accidental collision among any realistic number of claims


def token_key(federation_secret: bytes, job: str, window: str) -> bytes:
    """The token key of one matching job and time window (e.g. ``"2026-10"``)."""
    return derive_key(federation_secret, KeyUse.TOKEN, job, window)


def blind_tokens(key: bytes, rows: Iterable[Sequence[str | int | bytes]]) -> list[bytes]:
    """One 16-byte token per row of key fields, in order."""
    keyed = hmac.new(key, digestmod="sha256")  # the key's pads are hashed once, then copied
    tokens = []
    for fields in rows:
        mac = keyed.copy()
        mac.update(encode_fields(fields))
        tokens.append(mac.digest()[:TOKEN_BYTES])
    return tokens
