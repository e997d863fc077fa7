"""The node's audit log: append-only entries, each a leaf of an RFC 9162 Merkle tree, and a tree
head signed by the node after every commit.

Files in ``HOME/audit/``::

    log.jsonl    one entry per line in canonical JSON; the line's bytes are the Merkle leaf
    heads.jsonl  one signed tree head per commit (size, root, time, signer, signature)
    state.json   the tree's right edge after the last commit: a cache for appending, which
                 ``fedrisk audit verify`` never trusts
    lock         held (flock) by each writer while it commits, and by verify while it reads

Each entry also records ``seq`` (its index) and ``prev`` (the leaf hash of the entry before it),
so that a verifier can name the exact entry that was altered, not only the commit it was in.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, Literal

from fedrisk.crypto.canonical import canonical_json
from fedrisk.crypto.identity import Identity
from fedrisk.crypto.merkle import CompactRange, leaf_hash
from fedrisk.crypto.treehead import TreeHead, sign_tree_head
from fedrisk.models.errors import FedriskError

LOG_FILE = "log.jsonl"
HEADS_FILE = "heads.jsonl"
STATE_FILE = "state.json"
LOCK_FILE = "lock"
FIRST_PREV = "0" * 64  # what the first entry records as the hash before it
ENTRY_FIELDS = (
    "seq",
    "prev",
    "time",
    "node",
    "actor",
    "role",
    "purpose",
    "action",
    "dataset",
    "fields",
    "rows",
    "decision",
    "reason",
    "policy",
)


class AuditLogError(FedriskError):
    """The audit log cannot be appended to (e.g. it no longer matches its signed head)."""


class Durability(StrEnum):
    """When a commit counts as done."""

    FSYNC = "fsync"  # on disk (fsync of log and heads): survives a power cut
    FLUSH = "flush"  # handed to the OS: survives a crash of the process, not of the machine


@dataclass(frozen=True)
class AuditRecord:
    """What the access gate logs about one read or write; the log adds seq, prev, time, node."""

    actor: str
    role: str
    purpose: str
    action: Literal["read", "write"]
    dataset: str
    fields: tuple[str, ...]
    rows: int | None
    decision: Literal["allowed", "denied"]
    reason: str
    policy: str

    def entry(self, seq: int, prev: str, time: str, node: str) -> dict[str, Any]:
        """The log entry of this record (written by hand: ``asdict`` would copy deeply)."""
        return {
            "seq": seq,
            "prev": prev,
            "time": time,
            "node": node,
            "actor": self.actor,
            "role": self.role,
            "purpose": self.purpose,
            "action": self.action,
            "dataset": self.dataset,
            "fields": list(self.fields),
            "rows": self.rows,
            "decision": self.decision,
            "reason": self.reason,
            "policy": self.policy,
        }


@dataclass
class _State:
    edge: CompactRange
    prev: str
    log_bytes: int
    head: TreeHead | None


class AuditLog:
    """Appends to one node's audit log. Thread-safe; several processes may append (flock)."""

    def __init__(
        self,
        folder: Path,
        node: str,
        identity: Identity,
        durability: Durability = Durability.FSYNC,
    ) -> None:
        self.folder = folder
        self.node = node
        self._identity = identity
        self._durability = durability
        self._mutex = threading.Lock()

    @staticmethod
    def create(
        folder: Path, node: str, identity: Identity, durability: Durability = Durability.FSYNC
    ) -> AuditLog:
        """An empty log with a signed head of size 0, so that emptying it later is detected."""
        folder.mkdir(mode=0o700, parents=True, exist_ok=False)
        for name in (LOG_FILE, HEADS_FILE, LOCK_FILE):
            (folder / name).touch(mode=0o600)
        log = AuditLog(folder, node, identity, durability)
        log.append([])
        return log

    def append(self, records: Sequence[AuditRecord]) -> TreeHead:
        """Append ``records`` as one commit and sign the new tree head; returns the head.

        Heads grow strictly (an empty commit signs nothing), so a verifier can require it.
        """
        with self._mutex, locked(self.folder):
            state = self._load_state()
            if not records and state.head is not None:
                return state.head
            now = _now()
            lines = []
            for record in records:
                line = canonical_json(record.entry(state.edge.size, state.prev, now, self.node))
                leaf = leaf_hash(line)
                state.edge.append(leaf)
                state.prev = leaf.hex()
                lines.append(line)
            data = b"".join(line + b"\n" for line in lines)
            with (self.folder / LOG_FILE).open("ab") as handle:
                handle.write(data)
                self._sync(handle)
            state.log_bytes += len(data)
            head = sign_tree_head(self._identity, state.edge.size, state.edge.root(), now)
            with (self.folder / HEADS_FILE).open("ab") as handle:
                handle.write(canonical_json(head.to_json()) + b"\n")
                self._sync(handle)
            state.head = head
            _save_state(self.folder, state)
            return head

    def _sync(self, handle: IO[bytes]) -> None:
        handle.flush()
        if self._durability is Durability.FSYNC:
            os.fsync(handle.fileno())

    def _load_state(self) -> _State:
        """The right edge after the last commit, from the cache if it matches the log file."""
        log_bytes = (self.folder / LOG_FILE).stat().st_size
        try:
            cached = json.loads((self.folder / STATE_FILE).read_text(encoding="utf-8"))
            if int(cached["log_bytes"]) == log_bytes:
                nodes = [bytes.fromhex(n) for n in cached["edge"]]
                edge = CompactRange(int(cached["size"]), nodes)
                head = TreeHead.from_json(cached["head"]) if cached["head"] else None
                return _State(edge, cached["prev"], log_bytes, head)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no cache, or a stale or damaged one: recompute from the log
        return self._rebuild_state()

    def _rebuild_state(self) -> _State:
        """Recompute the edge from the log; refuse to go on if it contradicts the last head."""
        path = self.folder / LOG_FILE
        edge, prev, good_bytes = CompactRange(), FIRST_PREV, 0
        with path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a commit cut short by a crash: never signed, dropped below
                leaf = leaf_hash(line[:-1])
                edge.append(leaf)
                prev = leaf.hex()
                good_bytes += len(line)
        last = last_head(self.folder)
        if last is not None and (last.size != edge.size or last.root != edge.root()):
            raise AuditLogError(
                f"{path} does not match its last signed head (size {last.size}); "
                "run `fedrisk audit verify` before appending"
            )
        if good_bytes != path.stat().st_size:
            with path.open("r+b") as handle:
                handle.truncate(good_bytes)
        return _State(edge, prev, good_bytes, last)


def _save_state(folder: Path, state: _State) -> None:
    data = {
        "size": state.edge.size,
        "edge": [n.hex() for n in state.edge.nodes],
        "prev": state.prev,
        "log_bytes": state.log_bytes,
        "head": state.head.to_json() if state.head else None,
    }
    temporary = folder / (STATE_FILE + ".tmp")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, folder / STATE_FILE)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@contextmanager
def locked(folder: Path, shared: bool = False) -> Iterator[None]:
    """Hold the log's lock: exclusive for a writer, shared for a reader."""
    with (folder / LOCK_FILE).open("rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def read_heads(folder: Path) -> list[dict[str, Any]]:
    """The signed heads as stored (parsed JSON, unverified), oldest first."""
    with (folder / HEADS_FILE).open("rb") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def last_head(folder: Path) -> TreeHead | None:
    """The most recent signed head (unverified), or None for a log with none."""
    heads = read_heads(folder)
    return TreeHead.from_json(heads[-1]) if heads else None


def read_entries(folder: Path) -> Iterator[dict[str, Any]]:
    """The entries in order, parsed (unverified: use :mod:`.auditverify` for that)."""
    with (folder / LOG_FILE).open("rb") as handle:
        for line in handle:
            yield json.loads(line)


def entry_lines(folder: Path) -> list[bytes]:
    """The stored bytes of every entry (without the newline), in order."""
    with (folder / LOG_FILE).open("rb") as handle:
        return [line.rstrip(b"\n") for line in handle]
