"""Keyed pseudonyms: an identifier becomes HMAC-SHA256(node key, kind ‖ 0x00 ‖ identifier).

What a reader of pseudonyms learns: whether two records of the *same node* name the same
person (that is the point: history per patient), and nothing else. Without the node's key a
pseudonym cannot be reversed or recomputed from a guessed identifier, and the same person has
unrelated pseudonyms at different nodes, so pseudonyms cannot be linked across sites.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

KEY_BYTES = 32
PSEUDONYM_BYTES = 16  # 128 bits: collisions are negligible for any realistic population


def pseudonym(key: bytes, kind: str, identifier: str) -> str:
    """The pseudonym of one identifier, as 32 lowercase hex characters.

    ``kind`` (``patient``, ``doctor``, ``pharmacist``) separates the domains, so a doctor and a
    patient who happen to share an identifier string do not share a pseudonym.
    """
    _check_key(key)
    return _digest(key, kind.encode() + b"\0" + identifier.encode())


def pseudonyms(key: bytes, kind: str, identifiers: Iterable[str]) -> list[str]:
    """Pseudonyms of many identifiers, in order. Pass distinct values: each costs one HMAC."""
    _check_key(key)
    prefix = kind.encode() + b"\0"
    return [_digest(key, prefix + identifier.encode()) for identifier in identifiers]


def _digest(key: bytes, message: bytes) -> str:
    # The standard library's one-shot hmac.digest (OpenSSL's HMAC in one C call) costs a third
    # of building an HMAC object per value; PreCheck computes two for every claim.
    return hmac.digest(key, message, "sha256")[:PSEUDONYM_BYTES].hex()


def _check_key(key: bytes) -> None:
    if len(key) != KEY_BYTES:
        raise ValueError(f"pseudonym key must be {KEY_BYTES} bytes, got {len(key)}")
