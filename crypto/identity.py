"""A node's identity: an Ed25519 key that signs and an X25519 key that receives secrets.

Stored in one file, ``secrets/identity.key`` (0600). Without a passphrase the file holds the two
raw private keys; with one, they are sealed with AES-256-GCM under a key stretched from the
passphrase by scrypt (n = 2^15, r = 8, p = 1: about 50 ms and 32 MiB per attempt, so guessing
is slow). The public half is :class:`PublicIdentity`, which the node exports for enrollment: it
binds the receiving key to the signing key and the site id with a signature, so a relay cannot
substitute its own receiving key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from fedrisk.crypto.canonical import canonical_json

FORMAT = "fedrisk-identity-v1"
_RAW = serialization.Encoding.Raw
_SCRYPT = {"n": 2**15, "r": 8, "p": 1}
_AAD = b"fedrisk/v1/identity-file"
_BINDING = b"fedrisk/v1/public-identity\0"


class IdentityError(ValueError):
    """An identity file or public identity that cannot be used (names the file and why)."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError) as exc:
        raise IdentityError(f"{what} is not base64 ({exc})") from None


def _public_raw(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(_RAW, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class PublicIdentity:
    """What others know of a node: its site id, public keys and their binding signature."""

    site_id: str
    signing_key: bytes  # Ed25519, 32 bytes
    receiving_key: bytes  # X25519, 32 bytes
    binding: bytes  # Ed25519 signature over the three fields above

    @property
    def fingerprint(self) -> str:
        """First 16 bytes of SHA-256 over both public keys, hex: short and stable."""
        return hashlib.sha256(self.signing_key + self.receiving_key).hexdigest()[:32]

    def verifier(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.signing_key)

    def receiver(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.receiving_key)

    def to_json(self) -> dict[str, str]:
        return {
            "format": "fedrisk-public-identity-v1",
            "site_id": self.site_id,
            "signing_key": _b64(self.signing_key),
            "receiving_key": _b64(self.receiving_key),
            "fingerprint": self.fingerprint,
            "binding": _b64(self.binding),
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> PublicIdentity:
        """Parse and check an exported identity; raises :class:`IdentityError` if it is forged."""
        try:
            identity = PublicIdentity(
                str(data["site_id"]),
                _unb64(data["signing_key"], "signing_key"),
                _unb64(data["receiving_key"], "receiving_key"),
                _unb64(data["binding"], "binding"),
            )
        except KeyError as exc:
            raise IdentityError(f"public identity lacks {exc}") from None
        identity.check()
        return identity

    def check(self) -> None:
        """Raise :class:`IdentityError` unless the binding signature holds."""
        try:
            self.verifier().verify(self.binding, _binding_message(self))
        except (InvalidSignature, ValueError):
            raise IdentityError(
                f"public identity of {self.site_id!r}: the binding signature does not verify"
            ) from None


def _binding_message(identity: PublicIdentity) -> bytes:
    return _BINDING + canonical_json(
        {
            "site_id": identity.site_id,
            "signing_key": _b64(identity.signing_key),
            "receiving_key": _b64(identity.receiving_key),
        }
    )


class Identity:
    """A node's private keys. Sign with :meth:`sign`; open envelopes with :mod:`.envelope`."""

    def __init__(
        self, site_id: str, signing: Ed25519PrivateKey, receiving: X25519PrivateKey
    ) -> None:
        self.site_id = site_id
        self._signing = signing
        self._receiving = receiving
        unsigned = PublicIdentity(
            site_id,
            _public_raw(signing.public_key()),
            _public_raw(receiving.public_key()),
            b"",
        )
        self.public = PublicIdentity(
            site_id,
            unsigned.signing_key,
            unsigned.receiving_key,
            signing.sign(_binding_message(unsigned)),
        )

    @staticmethod
    def generate(site_id: str) -> Identity:
        return Identity(site_id, Ed25519PrivateKey.generate(), X25519PrivateKey.generate())

    def sign(self, message: bytes) -> bytes:
        return self._signing.sign(message)

    def exchange(self, peer: X25519PublicKey) -> bytes:
        """The X25519 shared secret with ``peer`` (only :mod:`.envelope` should need this)."""
        return self._receiving.exchange(peer)

    def save(self, path: Path, passphrase: bytes | None = None) -> None:
        """Write the private keys to a new 0600 file, sealed when a passphrase is given."""
        keys = self._signing.private_bytes_raw() + self._receiving.private_bytes_raw()
        record: dict[str, Any] = {"format": FORMAT, "site_id": self.site_id}
        if passphrase is None:
            record["keys"] = _b64(keys)
        else:
            salt = os.urandom(16)
            nonce = os.urandom(12)
            sealed = AESGCM(_stretch(passphrase, salt)).encrypt(nonce, keys, _AAD)
            record["scrypt"] = {**_SCRYPT, "salt": _b64(salt)}
            record["sealed"] = _b64(nonce + sealed)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle, indent=1)

    @staticmethod
    def load(path: Path, passphrase: bytes | None = None) -> Identity:
        """Read an identity file; a protected one needs its passphrase."""
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            site_id = str(record["site_id"])
        except FileNotFoundError:
            raise IdentityError(f"{path}: no identity file; the node home is damaged") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise IdentityError(f"{path}: not a fedrisk identity file ({exc})") from None
        if record.get("format") != FORMAT:
            raise IdentityError(f"{path}: unknown identity format {record.get('format')!r}")
        if "keys" in record:
            keys = _unb64(record["keys"], f"{path}: keys")
        else:
            keys = _unseal(path, record, passphrase)
        if len(keys) != 64:
            raise IdentityError(f"{path}: the keys have {len(keys)} bytes, expected 64")
        return Identity(
            site_id,
            Ed25519PrivateKey.from_private_bytes(keys[:32]),
            X25519PrivateKey.from_private_bytes(keys[32:]),
        )

    @staticmethod
    def is_protected(path: Path) -> bool:
        """Whether the identity file at ``path`` needs a passphrase."""
        try:
            return "sealed" in json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False


def _stretch(passphrase: bytes, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=_SCRYPT["n"], r=_SCRYPT["r"], p=_SCRYPT["p"]).derive(
        passphrase
    )


def _unseal(path: Path, record: dict[str, Any], passphrase: bytes | None) -> bytes:
    if passphrase is None:
        raise IdentityError(f"{path}: the node key is passphrase-protected; give the passphrase")
    try:
        params = record["scrypt"]
        salt = _unb64(params["salt"], f"{path}: salt")
        sealed = _unb64(record["sealed"], f"{path}: sealed keys")
        n, r, p = (int(params[name]) for name in ("n", "r", "p"))
        key = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase)
        return AESGCM(key).decrypt(sealed[:12], sealed[12:], _AAD)
    except InvalidTag:
        raise IdentityError(f"{path}: wrong passphrase (or the file was altered)") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise IdentityError(f"{path}: malformed protected identity ({exc})") from None
