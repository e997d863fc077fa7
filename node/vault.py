"""The identity vault: raw identifiers, each encrypted under the node's vault key.

It is a separate SQLite file from the analytic store, so that who a record is about and what
it says are never stored together. Each value is sealed with AES-256-GCM and bound (associated
data) to its kind and pseudonym; only the matching step, under an audited purpose, opens it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path

from fedrisk.crypto.aead import decrypt, encrypt_many
from fedrisk.node.desensitize import VaultEntry

_SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (
    kind TEXT NOT NULL,
    pseudonym TEXT NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (kind, pseudonym)
) WITHOUT ROWID
"""


class Vault:
    """Encrypted identifiers keyed by (kind, pseudonym)."""

    def __init__(self, path: Path, key: bytes) -> None:
        self._path = path
        self._key = key

    @staticmethod
    def create(path: Path) -> None:
        """Create an empty vault file readable by its owner only."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        with closing(sqlite3.connect(path)) as db, db:
            db.execute(_SCHEMA)

    def put(self, entries: Iterable[VaultEntry]) -> int:
        """Store the identities not yet in the vault; returns how many were new.

        Idempotent: an identity already present is left as it is, so a batch that is retried
        after a failure adds nothing twice.
        """
        batch = list(entries)
        sealed = encrypt_many(self._key, [(e.identifier.encode(), _aad(e)) for e in batch])
        # In key order, so that the table's B-tree (keyed by kind and pseudonym, no separate
        # rowid tree) grows by appends.
        rows = sorted((e.kind, e.pseudonym, s) for e, s in zip(batch, sealed, strict=True))
        with closing(sqlite3.connect(self._path)) as db, db:
            before = db.total_changes
            db.executemany("INSERT OR IGNORE INTO identities VALUES (?, ?, ?)", rows)
            return db.total_changes - before

    def reveal(self, kind: str, pseudonym: str) -> str | None:
        """The raw identifier behind a pseudonym (only for the audited matching step)."""
        with closing(sqlite3.connect(self._path)) as db:
            row = db.execute(
                "SELECT sealed FROM identities WHERE kind = ? AND pseudonym = ?", (kind, pseudonym)
            ).fetchone()
        if row is None:
            return None
        return decrypt(self._key, bytes(row[0]), _aad(VaultEntry(kind, pseudonym, ""))).decode()

    def reveal_many(self, kind: str, pseudonyms: Iterable[str]) -> dict[str, str]:
        """The raw identifiers behind many pseudonyms of one kind (the matching step's read)."""
        wanted = set(pseudonyms)
        with closing(sqlite3.connect(self._path)) as db:
            rows = db.execute(
                "SELECT pseudonym, sealed FROM identities WHERE kind = ?", (kind,)
            ).fetchall()
        return {
            p: decrypt(self._key, bytes(sealed), _aad(VaultEntry(kind, p, ""))).decode()
            for p, sealed in rows
            if p in wanted
        }

    def count(self) -> int:
        with closing(sqlite3.connect(self._path)) as db:
            return int(db.execute("SELECT count(*) FROM identities").fetchone()[0])


def _aad(entry: VaultEntry) -> bytes:
    return f"fedrisk-vault-v1\0{entry.kind}\0{entry.pseudonym}".encode()
