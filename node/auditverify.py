"""``fedrisk audit verify``: recompute a node's audit log and check it against its signed heads.

What the verifier checks, reading only the log files and the node's public identity:

1. every tree head is well formed, signed by the node's key, and larger than the one before;
2. every entry is a complete line of JSON whose ``seq`` is its position (so no entry was
   deleted, inserted or moved) and whose ``prev`` is the leaf hash of the entry before it;
3. the Merkle root of the first ``size`` entries equals the root of every signed head of that
   size — one leaf sequence explains every head, so successive heads are consistent (each log
   is an extension of the one before);
4. optionally, that the log extends a head the auditor kept from earlier (``--against``), with
   an RFC 9162 consistency proof: this detects a log cut back together with its heads file.

The report names the first bad entry. A single altered entry breaks the ``prev`` link to the
next one; when the two readings differ (was the entry altered, or the next one's ``prev``?)
the signed root decides.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

from fedrisk.crypto.identity import PublicIdentity
from fedrisk.crypto.merkle import (
    CompactRange,
    ProofError,
    consistency_proof,
    leaf_hash,
    root_of,
    verify_consistency,
)
from fedrisk.crypto.treehead import TreeHead, TreeHeadError
from fedrisk.node.auditlog import FIRST_PREV, HEADS_FILE, LOG_FILE, locked

_HASH = re.compile("[0-9a-f]{64}")
Progress = Callable[[int, int], None]  # bytes read, bytes in all


@dataclass(frozen=True)
class Problem:
    """The first thing found wrong: which entry (and/or head), and what."""

    message: str
    entry: int | None = None
    head: int | None = None


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    heads: int
    last_head: TreeHead | None
    problem: Problem | None
    seconds: float

    @property
    def intact(self) -> bool:
        return self.problem is None


class LeafHashes(Sequence[bytes]):
    """Leaf hashes packed in one bytearray (32 bytes each): a third of the memory of a list."""

    def __init__(self) -> None:
        self._data = bytearray()

    def append(self, leaf: bytes) -> None:
        self._data += leaf

    def __len__(self) -> int:
        return len(self._data) // 32

    @overload
    def __getitem__(self, index: int) -> bytes: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[bytes]: ...
    def __getitem__(self, index: int | slice) -> bytes | Sequence[bytes]:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            return [self[i] for i in range(start, stop, step)]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return bytes(self._data[32 * index : 32 * index + 32])


@dataclass
class _Scan:
    """What one pass over the entries found."""

    leaves: LeafHashes = field(default_factory=LeafHashes)
    recorded: dict[int, str] = field(default_factory=dict)  # prev of the entries at a break
    structural: Problem | None = None
    chain_break: int | None = None  # first j whose prev is not leaf(j - 1)
    root_mismatch: int | None = None  # index of the first head whose root differs


def verify_log(
    folder: Path,
    key: PublicIdentity,
    against: TreeHead | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Check the whole log in ``folder`` (see the module docstring); never raises on damage."""
    started = time.perf_counter()
    with locked(folder, shared=True):
        heads, head_problem = _read_heads(folder / HEADS_FILE, key)
        scan = _scan(folder / LOG_FILE, heads, progress)
    problem = _first_problem(scan, heads, head_problem)
    if problem is None and against is not None:
        problem = _check_against(scan.leaves, heads, against, key)
    last = heads[-1] if heads else None
    return VerifyReport(len(scan.leaves), len(heads), last, problem, time.perf_counter() - started)


def _read_heads(path: Path, key: PublicIdentity) -> tuple[list[TreeHead], Problem | None]:
    """The heads up to the first bad one, and what is wrong with it."""
    heads: list[TreeHead] = []
    with path.open("rb") as handle:
        for k, line in enumerate(handle):
            try:
                head = TreeHead.from_json(json.loads(line))
                head.verify(key)
            except (ValueError, TreeHeadError) as exc:
                return heads, Problem(f"signed head {k} is not valid: {exc}", head=k)
            if heads and head.size <= heads[-1].size:
                message = f"signed head {k} (size {head.size}) does not grow the one before"
                return heads, Problem(message, head=k)
            heads.append(head)
    if not heads:
        return heads, Problem("the log has no signed head at all", head=0)
    return heads, None


def _scan(path: Path, heads: list[TreeHead], progress: Progress | None) -> _Scan:
    scan = _Scan()
    edge = CompactRange()
    total = path.stat().st_size
    done = 0
    prev = FIRST_PREV
    pending = iter(heads)
    head = next(pending, None)
    head_index = 0
    while head is not None and head.size == 0:
        if head.root != edge.root():
            scan.root_mismatch = head_index
        head, head_index = next(pending, None), head_index + 1
    for i, line in enumerate(_lines(path)):
        done += len(line)
        if progress is not None and i % 65536 == 0:
            progress(done, total)
        entry_prev = _recorded_prev(i, line)
        if isinstance(entry_prev, Problem):
            scan.structural = entry_prev
            break
        data = line[:-1]
        if entry_prev != prev and scan.chain_break is None:
            scan.chain_break = i
        if scan.chain_break is not None and i - scan.chain_break < 2:
            scan.recorded[i] = entry_prev
        leaf = leaf_hash(data)
        scan.leaves.append(leaf)
        edge.append(leaf)
        prev = leaf.hex()
        while head is not None and head.size == edge.size:
            if head.root != edge.root() and scan.root_mismatch is None:
                scan.root_mismatch = head_index
            head, head_index = next(pending, None), head_index + 1
    if progress is not None:
        progress(total, total)
    return scan


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from handle


def _recorded_prev(i: int, line: bytes) -> str | Problem:
    """Entry ``i``'s recorded ``prev``, or what is wrong with the line if it is damaged."""
    if not line.endswith(b"\n"):
        return Problem(f"entry {i} is incomplete (no line end)", entry=i)
    try:
        entry = json.loads(line)
    except ValueError as exc:
        return Problem(f"entry {i} is not valid JSON ({exc})", entry=i)
    if not isinstance(entry, dict) or not _HASH.fullmatch(str(entry.get("prev"))):
        return Problem(f"entry {i} is not an audit entry (no valid prev hash)", entry=i)
    if entry.get("seq") != i:
        return Problem(
            f"entry {i} says it is entry {entry.get('seq')!r}: entries were deleted, inserted "
            "or moved",
            entry=i,
        )
    return str(entry["prev"])


def _first_problem(
    scan: _Scan, heads: list[TreeHead], head_problem: Problem | None
) -> Problem | None:
    """The earliest of everything the scan and the heads showed."""
    found: list[Problem] = []
    if scan.structural is not None:
        found.append(scan.structural)
    if scan.chain_break is not None:
        culprit = _chain_culprit(scan, heads, scan.chain_break)
        found.append(Problem(f"entry {culprit} was altered (its hash chain is broken)", culprit))
    count = len(scan.leaves)
    if scan.structural is None:
        signed = heads[-1].size if heads else 0
        if count < signed:
            found.append(
                Problem(
                    f"entry {count} is missing: the log has {count} entries but a signed head "
                    f"covers {signed} (the log was truncated)",
                    count,
                )
            )
        elif count > signed and head_problem is None:
            found.append(
                Problem(f"entries {signed}–{count - 1} are not covered by a signed head", signed)
            )
    if scan.root_mismatch is not None:
        k = scan.root_mismatch
        end = heads[k].size
        found.append(Problem(f"entry {end - 1} does not match signed head {k}", end - 1, k))
    if head_problem is not None:
        first_uncovered = heads[-1].size if heads else 0
        found.append(Problem(head_problem.message, first_uncovered, head_problem.head))
    return min(found, key=lambda p: p.entry if p.entry is not None else -1, default=None)


def _chain_culprit(scan: _Scan, heads: list[TreeHead], j: int) -> int:
    """Entry ``j`` records a ``prev`` that is not the hash of entry ``j - 1``: which is altered?

    If the link after ``j`` holds, entry ``j`` is as signed and ``j - 1`` changed. If it breaks
    too, ``j`` changed (its ``prev``, hence its hash). For the last entry there is no next link:
    put ``j``'s recorded ``prev`` back as the hash of ``j - 1`` and see whether the signed root
    comes out right.
    """
    leaves = scan.leaves
    if j == 0:
        return 0
    if j + 1 < len(leaves):
        return j if scan.recorded[j + 1] != leaves[j].hex() else j - 1
    head = next((h for h in heads if h.size > j - 1), None)
    if head is None or head.size > len(leaves):
        return j - 1
    restored = [*leaves[: j - 1], bytes.fromhex(scan.recorded[j]), *leaves[j : head.size]]
    return j - 1 if root_of(restored) == head.root else j


def _check_against(
    leaves: LeafHashes, heads: list[TreeHead], earlier: TreeHead, key: PublicIdentity
) -> Problem | None:
    """Whether the log extends ``earlier``, a head kept outside the node."""
    try:
        earlier.verify(key)
    except TreeHeadError as exc:
        return Problem(f"the head given with --against is not valid: {exc}")
    latest = heads[-1]
    if earlier.size > latest.size:
        return Problem(
            f"the log's latest head has {latest.size} entries, fewer than the {earlier.size} "
            "of the head given with --against: the log was cut back",
            latest.size,
        )
    proof = consistency_proof(leaves, earlier.size, latest.size)
    try:
        verify_consistency(earlier.size, latest.size, earlier.root, latest.root, proof)
    except ProofError as exc:
        return Problem(
            f"the log does not extend the head given with --against ({exc}): its first "
            f"{earlier.size} entries were rewritten",
            0,
        )
    return None
