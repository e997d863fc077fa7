"""What every matching job provides, and the reads they share.

A job holds this node's *entries*: one per key of the job (a trace code; a patient and drug in
a month; …). Entry ``i`` has a window and key fields, from which its blind token is made. For
the entries whose token the coordinator finds at other nodes, the job supplies the values to
encrypt (``attributes × slots_per_key`` integers; the group's leader subtracts the limit) and
turns the decrypted signs or sums into flags. Entries that no other node holds are decided
alone, by :meth:`MatchJob.local`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

import duckdb
import numpy as np
from numpy.typing import NDArray

from fedrisk.node.access import SiteAccess
from fedrisk.node.vault import Vault
from fedrisk.protos.matching import ALL_WINDOWS

Int64s = NDArray[np.int64]
Key = tuple[str, tuple[str | int, ...]]  # (window, key fields)


@dataclass(frozen=True)
class Found:
    """One settlement of this node that a job flags, with the evidence (no raw identifier)."""

    settlement_id: str
    evidence: dict[str, Any]


class MatchJob(Protocol):
    """One job at one node; see the module docstring."""

    name: str
    slots_per_key: int

    def keys(self) -> Sequence[Key]:
        """Every entry's window and key fields, distinct."""
        ...

    def values(self, entries: Int64s, leaders: NDArray[np.bool_]) -> Int64s:
        """``(len(entries), attributes, slots_per_key)`` integers to encrypt."""
        ...

    def decide(self, entries: Int64s, outcome: Int64s | None, sites: Int64s) -> list[Found]:
        """Flags from the decrypted slots of shared entries (``None``: a job without values)."""
        ...

    def local(self, entries: Int64s) -> list[Found]:
        """Flags of entries no other node holds."""
        ...


def store_rows(
    access: SiteAccess,
    reads: Mapping[str, Sequence[str]],
    sql: str,
    params: Sequence[object] = (),
    tables: Mapping[str, object] | None = None,
) -> list[tuple[Any, ...]]:
    """``sql`` over views of only the granted ``reads`` (policy-checked and audited)."""
    with closing(duckdb.connect()) as db:
        access.attach_store(db, reads)
        for name, table in (tables or {}).items():
            db.register(name, table)
        return db.execute(sql, list(params)).fetchall()


def identities(access: SiteAccess, kind: str, pseudonyms: Iterable[str]) -> dict[str, str]:
    """The vault's identifiers behind ``pseudonyms`` (an audited read of the vault)."""
    wanted = sorted(set(pseudonyms))
    vault = Vault(access.home.vault, access.home.secret("vault"))
    return access.read(
        "vault", ["kind", "pseudonym", "identifier"], lambda: vault.reveal_many(kind, wanted)
    )


def month(moment: date | datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def in_window(window: str, value: str) -> bool:
    """Whether a month (``YYYY-MM``) is in the job's window (a month, or every month)."""
    return window in (ALL_WINDOWS, value)


def empty_values(count: int, attributes: int, slots: int) -> Int64s:
    return np.zeros((count, attributes, slots), np.int64)
