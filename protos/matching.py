"""The wire contract of cross-site matching: the jobs, their steps, and how payloads are packed.

A job runs in up to three exchanges between the coordinator and the nodes (see
docs/privacy.md for what each party learns at each):

1. ``query.match_tokens``: each node answers with the blind tokens of its keys, sorted (a
   signed :data:`TOKENS` message), or with a refusal when its policy forbids the job.
2. ``query.match_values``: the coordinator tells each node where its shared keys sit (slot
   bases, whether it is the group's leader, how many sites the group spans); the node answers
   with BFV ciphertexts of its values in those slots (a signed :data:`VALUES` message).
3. ``query.match_result``: the coordinator returns the summed (and, for matching jobs, masked)
   ciphertexts, each with only that node's slots readable; the node decides and writes flags.

A job without encrypted values (``duplicate_trace_code``) skips step 2, and step 3 carries
only the assignment.

The jobs of one run travel together: each step is one exchange for all of them, since on Flower
the number of rounds, not bytes, dominates small jobs. A message names its ``jobs``; the fields
of job J are named ``J.<field>`` (:func:`job_field`).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

import numpy as np
from numpy.typing import NDArray

from fedrisk.crypto.signed import step_context

TOKEN_BYTES: Final = 16
TOKENS: Final = "match.tokens"
VALUES: Final = "match.values"
ALL_WINDOWS: Final = "all"


@dataclass(frozen=True)
class JobSpec:
    """What the coordinator needs to know of a job: nothing about the data behind it."""

    name: str
    attributes: int  # encrypted values per slot (0: the overlap of tokens is the answer)
    groups: Literal["shared", "all"]  # which groups get slots: ≥ 2 sites, or every group
    masked: bool  # True: only the sign of sum − limit is returned; False: the sum itself

    @property
    def min_sites(self) -> int:
        return 2 if self.groups == "shared" else 1


JOBS: Final[dict[str, JobSpec]] = {
    spec.name: spec
    for spec in (
        JobSpec("duplicate_trace_code", 0, "shared", masked=True),
        JobSpec("cross_site_over_quantity", 2, "shared", masked=True),
        JobSpec("monthly_pharmacy_spend", 1, "shared", masked=True),
        JobSpec("pharmacist_multi_site", 1, "shared", masked=True),
        JobSpec("prescriber_outlier", 2, "all", masked=False),
    )
}


@dataclass(frozen=True)
class MatchTask:
    """One job over one window, within a federation epoch and a named run."""

    federation: str
    epoch: int
    run: str
    job: str
    window: str

    def fields(self) -> dict[str, str | int]:
        """The fields every job of a run shares (the job itself is named per field)."""
        return {
            "federation": self.federation,
            "epoch": self.epoch,
            "run": self.run,
            "window": self.window,
        }

    def context(self, step: str) -> str:
        """What a node's signed reply of ``step`` is bound to (nodes build it alike)."""
        return step_context(
            self.federation,
            self.epoch,
            f"run={self.run}",
            f"job={self.job}",
            f"window={self.window}",
            f"step={step}",
        )


_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def check_window(window: str) -> str:
    """``window`` if it is ``all`` or a month ``YYYY-MM``; raises :class:`PayloadError`."""
    if window != ALL_WINDOWS and not _MONTH.fullmatch(window):
        raise PayloadError(f"window {window!r}: expected 'all' or a month YYYY-MM")
    return window


def job_field(job: str, name: str) -> str:
    """The record field ``name`` of ``job`` in a message that carries several jobs."""
    return f"{job}.{name}"


class PayloadError(ValueError):
    """A payload that does not parse; the text says which part."""


def job_spec(name: str) -> JobSpec:
    if name not in JOBS:
        raise PayloadError(f"unknown matching job {name!r}; known: {', '.join(JOBS)}")
    return JOBS[name]


def pack_tokens(tokens: NDArray[np.uint8]) -> bytes:
    """A node's tokens as one byte string, sorted (the order of its rows is not revealed)."""
    if tokens.ndim != 2 or tokens.shape[1] != TOKEN_BYTES:
        raise PayloadError(f"tokens must be an (n, {TOKEN_BYTES}) byte array")
    high, low = _halves(tokens)
    if not _rising(high, low):
        tokens = tokens[token_order(tokens)]
    return np.ascontiguousarray(tokens).tobytes()


def unpack_tokens(data: bytes) -> NDArray[np.uint8]:
    """The (n, 16) tokens of :func:`pack_tokens`; refuses a ragged, unsorted or repeated list."""
    if len(data) % TOKEN_BYTES:
        raise PayloadError(f"{len(data)} bytes of tokens is not a multiple of {TOKEN_BYTES}")
    tokens = np.frombuffer(data, np.uint8).reshape(-1, TOKEN_BYTES)
    if not _rising(*_halves(tokens)):
        raise PayloadError("tokens are not sorted and distinct")
    return tokens


def token_order(tokens: NDArray[np.uint8]) -> NDArray[np.int64]:
    """The permutation that sorts tokens as byte strings (stable: equal tokens keep their
    order). The first 8 bytes decide unless two *different* tokens share them, which among
    random tokens is rare enough that sorting by them alone first is ~7× faster than a two-key
    sort; equal tokens (the shared keys a join is for) need no second key."""
    high, low = _halves(tokens)
    order = np.argsort(high, kind="stable")
    highs, lows = high[order], low[order]
    tie = (highs[1:] == highs[:-1]) & (lows[1:] != lows[:-1])
    if bool(np.any(tie)):
        order = np.lexsort((low, high))
    return order.astype(np.int64)


def _rising(high: NDArray[np.uint64], low: NDArray[np.uint64]) -> bool:
    """Whether the tokens are sorted and distinct."""
    up = (high[1:] > high[:-1]) | ((high[1:] == high[:-1]) & (low[1:] > low[:-1]))
    return bool(np.all(up))


def _halves(tokens: NDArray[np.uint8]) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    """Each token as two big-endian 64-bit integers, which order like its bytes."""
    words = np.ascontiguousarray(tokens).view(">u8").reshape(-1, 2)
    return words[:, 0].astype(np.uint64), words[:, 1].astype(np.uint64)


def int_array(values: NDArray[np.int64] | list[int]) -> bytes:
    return np.asarray(values, "<i8").tobytes()


def read_int_array(data: bytes, name: str) -> NDArray[np.int64]:
    if len(data) % 8:
        raise PayloadError(f"{name}: {len(data)} bytes is not a list of 64-bit integers")
    return np.frombuffer(data, "<i8").astype(np.int64)


_ENTRY = struct.Struct("<IIQ")  # attribute, chunk, length


def pack_ciphertexts(parts: dict[tuple[int, int], bytes]) -> bytes:
    """Ciphertexts keyed by (attribute, chunk), as one byte string."""
    keys = sorted(parts)
    head = struct.pack("<I", len(keys)) + b"".join(
        _ENTRY.pack(a, c, len(parts[(a, c)])) for a, c in keys
    )
    return head + b"".join(parts[key] for key in keys)


def unpack_ciphertexts(data: bytes) -> dict[tuple[int, int], bytes]:
    """The ciphertexts of :func:`pack_ciphertexts`, bounds-checked."""
    if len(data) < 4:
        raise PayloadError("a ciphertext list shorter than its count")
    (count,) = struct.unpack_from("<I", data)
    offset = 4 + count * _ENTRY.size
    if offset > len(data):
        raise PayloadError(f"a list of {count} ciphertexts is longer than its {len(data)} bytes")
    parts: dict[tuple[int, int], bytes] = {}
    for i in range(count):
        attribute, chunk, length = _ENTRY.unpack_from(data, 4 + i * _ENTRY.size)
        if offset + length > len(data) or (attribute, chunk) in parts:
            raise PayloadError(f"ciphertext {i} (attribute {attribute}, chunk {chunk}) is bad")
        parts[(attribute, chunk)] = data[offset : offset + length]
        offset += length
    if offset != len(data):
        raise PayloadError(f"{len(data) - offset} bytes after the last ciphertext")
    return parts


_SHAPE = struct.Struct("<I")


def pack_token_reply(slots_per_key: int, tokens: NDArray[np.uint8]) -> bytes:
    """Step 1's payload: the slots each key needs (the job's layout, which every node must
    state alike) and the sorted tokens."""
    return _SHAPE.pack(slots_per_key) + pack_tokens(tokens)


def unpack_token_reply(data: bytes) -> tuple[int, NDArray[np.uint8]]:
    if len(data) < _SHAPE.size:
        raise PayloadError("a token reply without its slot count")
    (slots_per_key,) = _SHAPE.unpack_from(data)
    return slots_per_key, unpack_tokens(data[_SHAPE.size :])


@dataclass(frozen=True)
class Assignment:
    """Where one node's shared keys sit: one row per token of the node that has slots."""

    index: NDArray[np.int64]  # position of the token in the node's sorted list
    base: NDArray[np.int64]  # the first slot of the token's group
    sites: NDArray[np.int64]  # how many nodes hold the token
    leader: NDArray[np.bool_]  # this node subtracts the group's limit (one node per group)

    def fields(self, job: str) -> dict[str, bytes]:
        """The assignment as the record fields of ``job``."""
        arrays = {
            "index": self.index,
            "base": self.base,
            "sites": self.sites,
            "leader": self.leader.astype(np.int64),
        }
        return {job_field(job, name): int_array(array) for name, array in arrays.items()}

    @staticmethod
    def from_fields(job: str, fields: Mapping[str, bytes]) -> Assignment:
        arrays = {
            name: read_int_array(fields[job_field(job, name)], name) for name in _ASSIGNMENT_FIELDS
        }
        if len({len(a) for a in arrays.values()}) != 1:
            raise PayloadError("the assignment's index, base, sites and leader differ in length")
        return Assignment(
            arrays["index"], arrays["base"], arrays["sites"], arrays["leader"].astype(bool)
        )

    def chunks(self, slots: int) -> set[int]:
        """The ciphertext chunks these keys' slots lie in (``slots`` slots a ciphertext)."""
        return set((self.base // slots).tolist())


_ASSIGNMENT_FIELDS = ("index", "base", "sites", "leader")
