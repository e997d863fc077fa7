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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
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
        with self._mutex, self.writer() as writer:
            return writer.append(records)

    def writer(self) -> LogWriter:
        """A writer that keeps the files open between commits, for one thread that commits
        many times a second (the audit queue of a service); close it when done."""
        return LogWriter(self.folder, self.node, self._identity, self._durability)


class LogWriter:
    """Commits to one log, keeping its files open and its right edge in memory between commits.

    Why: a service commits ~50 times a second from a thread beside the one answering calls;
    each file opened and each cache file parsed is a moment that thread holds, or waits for, the
    interpreter lock. Another process may still append between two commits: under the lock, a
    log whose size is not the one this writer left is read again (from ``state.json``, or
    rebuilt). Not thread-safe: one writer per thread.
    """

    def __init__(self, folder: Path, node: str, identity: Identity, durability: Durability) -> None:
        self.folder = folder
        self.node = node
        self._identity = identity
        self._durability = durability
        self._state: _State | None = None
        with ExitStack() as opened:
            self._lock = opened.enter_context((folder / LOCK_FILE).open("rb"))
            self._log = opened.enter_context((folder / LOG_FILE).open("ab"))
            self._heads = opened.enter_context((folder / HEADS_FILE).open("ab"))
            self._files = opened.pop_all()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._files.close()

    def append(self, records: Sequence[AuditRecord]) -> TreeHead:
        """Append ``records`` as one commit and sign the new tree head (see AuditLog.append)."""
        fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX)
        try:
            state = self._current_state()
            if not records and state.head is not None:
                return state.head
            now = _now()
            lines = []
            for record in records:
                line = entry_line(record, state.edge.size, state.prev, now, self.node)
                leaf = leaf_hash(line)
                state.edge.append(leaf)
                state.prev = leaf.hex()
                lines.append(line)
            data = b"".join(line + b"\n" for line in lines)
            self._write(self._log, data)
            state.log_bytes += len(data)
            head = sign_tree_head(self._identity, state.edge.size, state.edge.root(), now)
            self._write(self._heads, canonical_json(head.to_json()) + b"\n")
            state.head = head
            _save_state(self.folder, state)
            return head
        except BaseException:
            self._state = None  # a commit cut short: read the files again next time
            raise
        finally:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_UN)

    def _current_state(self) -> _State:
        """The edge this writer left, unless the log has changed size since (another writer,
        or a crash mid-commit)."""
        size = os.fstat(self._log.fileno()).st_size
        if self._state is None or self._state.log_bytes != size:
            self._state = _load_state(self.folder, size)
        return self._state

    def _write(self, handle: IO[bytes], data: bytes) -> None:
        handle.write(data)
        handle.flush()
        if self._durability is Durability.FSYNC:
            os.fsync(handle.fileno())


def entry_line(record: AuditRecord, seq: int, prev: str, time: str, node: str) -> bytes:
    """``canonical_json(record.entry(seq, prev, time, node))``, from a template of the record.

    Why: a service's entries differ only in these three values (and ``rows``), and the writer
    encodes a whole group while it holds the interpreter lock; joining a template's pieces
    costs a twentieth of encoding each entry. ``prev`` (hex) and ``time`` (ISO 8601) need no
    escaping in JSON, so their encodings are the quoted strings.
    """
    pieces = _template(record, node)
    if pieces is None:
        return canonical_json(record.entry(seq, prev, time, node))
    before_prev, before_seq, before_time, end = pieces
    return b"".join(
        (before_prev, prev.encode(), before_seq, b"%d" % seq, before_time, time.encode(), end)
    )


_MARK = "\x00fedrisk-{}\x00"


@lru_cache(maxsize=1024)
def _template(record: AuditRecord, node: str) -> tuple[bytes, bytes, bytes, bytes] | None:
    """The record's entry cut around ``prev``, ``seq`` and ``time`` (in key order); None when a
    marker also appears in the record's own values, which only a hostile value could do."""
    names = ("prev", "seq", "time")
    entry = record.entry(0, "", "", node)
    entry.update({name: _MARK.format(name) for name in names})
    encoded = canonical_json(entry)
    quoted = [canonical_json(_MARK.format(name)) for name in names]
    if any(encoded.count(mark) != 1 for mark in quoted):
        return None
    head, rest = encoded.split(quoted[0])
    middle, rest = rest.split(quoted[1])
    tail, end = rest.split(quoted[2])
    return head + b'"', b'"' + middle, tail + b'"', b'"' + end


def _load_state(folder: Path, log_bytes: int) -> _State:
    """The right edge after the last commit, from the cache if it matches the log file."""
    try:
        cached = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        if int(cached["log_bytes"]) == log_bytes:
            nodes = [bytes.fromhex(n) for n in cached["edge"]]
            edge = CompactRange(int(cached["size"]), nodes)
            head = TreeHead.from_json(cached["head"]) if cached["head"] else None
            return _State(edge, cached["prev"], log_bytes, head)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no cache, or a stale or damaged one: recompute from the log
    return _rebuild_state(folder)


def _rebuild_state(folder: Path) -> _State:
    """Recompute the edge from the log; refuse to go on if it contradicts the last head."""
    path = folder / LOG_FILE
    edge, prev, good_bytes = CompactRange(), FIRST_PREV, 0
    with path.open("rb") as handle:
        for line in handle:
            if not line.endswith(b"\n"):
                break  # a commit cut short by a crash: never signed, dropped below
            leaf = leaf_hash(line[:-1])
            edge.append(leaf)
            prev = leaf.hex()
            good_bytes += len(line)
    last = last_head(folder)
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
    temporary.write_bytes(json.dumps(data).encode("utf-8"))
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
