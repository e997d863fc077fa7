"""Signed tree heads: a node's signed statement "my log had ``size`` entries with this root".

What a holder of a signed head learns: the size and root of the node's log at that time, and
that the node's key vouched for them — nothing about the entries. With a later head and a
consistency proof, anyone can check that the log was only appended to in between.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature

from fedrisk.crypto.canonical import canonical_json
from fedrisk.crypto.identity import Identity, PublicIdentity

_SIGNED = b"fedrisk/v1/tree-head\0"


class TreeHeadError(ValueError):
    """A tree head whose signature does not verify or whose fields are malformed."""


@dataclass(frozen=True)
class TreeHead:
    """One signed tree head."""

    size: int
    root: bytes
    time: str  # ISO 8601, UTC
    signer: str  # fingerprint of the signing node
    signature: bytes

    def signed_fields(self) -> dict[str, Any]:
        return _fields(self.size, self.root, self.time, self.signer)

    def to_json(self) -> dict[str, Any]:
        return {**self.signed_fields(), "signature": base64.b64encode(self.signature).decode()}

    @staticmethod
    def from_json(data: dict[str, Any]) -> TreeHead:
        try:
            return TreeHead(
                size=int(data["size"]),
                root=bytes.fromhex(data["root"]),
                time=str(data["time"]),
                signer=str(data["signer"]),
                signature=base64.b64decode(data["signature"], validate=True),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise TreeHeadError(f"malformed tree head ({exc})") from None

    def verify(self, key: PublicIdentity) -> None:
        """Raise :class:`TreeHeadError` unless ``key`` signed exactly these fields."""
        if self.signer != key.fingerprint:
            raise TreeHeadError(
                f"tree head of size {self.size} names signer {self.signer}, not {key.fingerprint}"
            )
        try:
            key.verifier().verify(self.signature, _message(self.signed_fields()))
        except InvalidSignature:
            raise TreeHeadError(
                f"tree head of size {self.size}: the signature does not verify"
            ) from None


def sign_tree_head(identity: Identity, size: int, root: bytes, time: str) -> TreeHead:
    """A tree head over ``(size, root, time)`` signed with the node's Ed25519 key."""
    signer = identity.public.fingerprint
    fields = _fields(size, root, time, signer)
    return TreeHead(size, root, time, signer, identity.sign(_message(fields)))


def _message(fields: dict[str, Any]) -> bytes:
    return _SIGNED + canonical_json(fields)


def _fields(size: int, root: bytes, time: str, signer: str) -> dict[str, Any]:
    return {"size": size, "root": root.hex(), "time": time, "signer": signer}
