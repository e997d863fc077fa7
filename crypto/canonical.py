"""Canonical byte encodings: one value, one byte string, so hashes and signatures agree.

Two encodings, each for one job:

- :func:`canonical_json` — JSON with sorted keys, no spaces, UTF-8 (in the spirit of RFC 8785)
  for records that people also read: audit entries, tree heads, envelope headers.
- :func:`encode_fields` — a length-prefixed sequence for short key material (blind-token keys,
  HKDF context): no separator can be forged inside a field, so ``("ab", "c")`` and
  ``("a", "bc")`` never encode alike.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

_LENGTH_BYTES = 4
# One encoder for every call: json.dumps with options builds a new encoder each time, which
# costs as much as the encoding of a small record.
_ENCODER = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (dicts, lists, str, int, bool, None)."""
    return _ENCODER.encode(value).encode("utf-8")


def encode_fields(fields: Sequence[str | int | bytes]) -> bytes:
    """``tag ‖ length ‖ bytes`` for each field, in order.

    Strings are NFC-normalised and stripped of surrounding whitespace, so the same identifier
    typed at two sites (one with a trailing space, one with a decomposed character) encodes
    alike; integers are written in decimal; bytes are taken as they are. The one-byte tag keeps
    ``"1"`` and ``1`` apart.
    """
    out = bytearray()
    for field in fields:
        if isinstance(field, str):  # first: identifiers are text
            # ASCII is its own NFC form: skip the normalisation, the common case of identifiers
            text = field if field.isascii() else unicodedata.normalize("NFC", field)
            tag, data = b"s", text.strip().encode("utf-8")
        elif isinstance(field, bytes):
            tag, data = b"b", field
        elif isinstance(field, bool):
            raise TypeError("booleans are not key fields; encode them as 0/1 explicitly")
        elif isinstance(field, int):
            tag, data = b"i", str(field).encode("ascii")
        else:
            raise TypeError(f"cannot encode a key field of type {type(field).__name__}")
        out += tag
        out += len(data).to_bytes(_LENGTH_BYTES, "big")
        out += data
    return bytes(out)
