"""The blind join: group the nodes' tokens and give the groups that count their slots.

What the coordinator learns here: for each token, how many nodes hold it (the overlap structure
that is the supervision signal), and how many tokens each node sent. Tokens are keyed HMACs
that change with every job and window, so nothing is learned of the keys behind them.

Every group is laid out in ``slots_per_key`` consecutive slots that never straddle two
ciphertexts, so that a node's slots of one group are in a single chunk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from fedrisk.crypto.blindsum import SLOTS
from fedrisk.protos.matching import Assignment, token_order

Int64s = NDArray[np.int64]


@dataclass(frozen=True)
class Layout:
    """Where every kept group sits, and each node's share of it."""

    groups: int
    slots_per_key: int
    placements: dict[str, Assignment]  # by sender

    def own_slots(self, sender: str) -> Int64s:
        """Every absolute slot of the groups ``sender`` holds a key in."""
        bases = self.placements[sender].base
        return (bases[:, None] + np.arange(self.slots_per_key)).ravel()

    @property
    def chunks(self) -> int:
        per_chunk = SLOTS // self.slots_per_key
        return -(-self.groups // per_chunk)


def join(tokens: Mapping[str, NDArray[np.uint8]], min_sites: int, slots_per_key: int) -> Layout:
    """Group the tokens of every node; keep the groups held by ≥ ``min_sites`` nodes."""
    if not 1 <= slots_per_key <= SLOTS:
        raise ValueError(f"{slots_per_key} slots per key: 1 to {SLOTS} fit a ciphertext")
    senders = sorted(tokens)
    counts = [len(tokens[s]) for s in senders]
    owner = np.repeat(np.arange(len(senders)), counts)
    index = np.concatenate([np.arange(n) for n in counts]) if senders else np.empty(0, np.int64)
    merged = np.concatenate([tokens[s] for s in senders]) if senders else np.empty((0, 16))
    order = token_order(merged.astype(np.uint8))
    # within equal tokens the owners stay in order (a stable sort of tokens concatenated by
    # owner), so each group's first row is its leader
    words = np.ascontiguousarray(merged).view("<u8").reshape(-1, 2)[order]
    first = np.ones(len(order), bool)
    first[1:] = (words[1:, 0] != words[:-1, 0]) | (words[1:, 1] != words[:-1, 1])
    del words
    group = np.cumsum(first) - 1
    size = np.bincount(group) if len(group) else np.empty(0, np.int64)
    kept = size >= min_sites
    rank = np.cumsum(kept) - 1
    per_chunk = SLOTS // slots_per_key
    slot_of_group = (rank // per_chunk) * SLOTS + (rank % per_chunk) * slots_per_key
    keep = kept[group]
    owner, index = owner[order], index[order]
    placements = {}
    for number, sender in enumerate(senders):
        mine = keep & (owner == number)
        placements[sender] = Assignment(
            index=index[mine].astype(np.int64),
            base=slot_of_group[group[mine]].astype(np.int64),
            sites=size[group[mine]].astype(np.int64),
            leader=first[mine],
        )
    return Layout(int(kept.sum()), slots_per_key, placements)
