"""The byte framing that sealed envelopes and signed messages share:

    MAGIC ‖ len(header) (4 bytes, big-endian) ‖ header ‖ body ‖ Ed25519 signature (64 bytes)

The header is canonical JSON (one value, one byte string), so what was signed can be checked
byte for byte; the signature covers a domain label and every byte before it. This module only
packs and splits frames and signs or checks them; what the header must hold, and what the body
is, belong to each format (:mod:`fedrisk.crypto.envelope`, :mod:`fedrisk.crypto.signed`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature

from fedrisk.crypto.canonical import canonical_json
from fedrisk.crypto.identity import Identity, PublicIdentity

LENGTH_BYTES = 4
SIGNATURE_BYTES = 64


class FrameError(ValueError):
    """Bytes that are not a well-formed frame of the expected format."""


@dataclass(frozen=True)
class Frame:
    """A split frame: the header's bytes and fields, the body and the signature."""

    signed: bytes  # every byte the signature covers (after the domain label)
    header: bytes
    fields: dict[str, Any]
    body: bytes
    signature: bytes

    def verified_by(self, signer: PublicIdentity, label: bytes) -> bool:
        try:
            signer.verifier().verify(self.signature, label + self.signed)
        except InvalidSignature:
            return False
        return True


def pack(
    magic: bytes, header: dict[str, Any], body: bytes, signer: Identity, label: bytes
) -> bytes:
    """A signed frame of ``header`` (canonical JSON) and ``body``."""
    encoded = canonical_json(header)
    signed = magic + len(encoded).to_bytes(LENGTH_BYTES, "big") + encoded + body
    return signed + signer.sign(label + signed)


def unpack(data: bytes, magic: bytes, what: str) -> Frame:
    """Split a frame; raises :class:`FrameError` (naming ``what``) if it is malformed."""
    start = len(magic) + LENGTH_BYTES
    if len(data) < start + SIGNATURE_BYTES or not data.startswith(magic):
        raise FrameError(f"not a {what} (unsigned, bad magic or too short)")
    end = start + int.from_bytes(data[len(magic) : start], "big")
    if end + SIGNATURE_BYTES > len(data):
        raise FrameError(f"{what}: the header length runs past the end")
    header = data[start:end]
    try:
        fields = json.loads(header)
        if not isinstance(fields, dict) or canonical_json(fields) != header:
            raise ValueError("the header is not canonical JSON")
    except ValueError as error:
        raise FrameError(f"{what}: malformed header ({error})") from None
    signed = data[:-SIGNATURE_BYTES]
    return Frame(signed, header, fields, data[end:-SIGNATURE_BYTES], data[-SIGNATURE_BYTES:])
