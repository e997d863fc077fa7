"""The blind join: groups across nodes, slots that never straddle a ciphertext, one leader."""

from __future__ import annotations

import numpy as np

from fedrisk.coordinator.blindjoin import join
from fedrisk.crypto.blindsum import SLOTS
from fedrisk.protos.matching import pack_tokens, unpack_tokens


def _tokens(*names: str) -> np.ndarray:
    raw = [name.encode().ljust(16, b".") for name in names]
    return unpack_tokens(pack_tokens(np.frombuffer(b"".join(raw), np.uint8).reshape(-1, 16)))


def test_groups_held_by_two_or_more_nodes_get_slots_with_one_leader() -> None:
    tokens = {"a": _tokens("x", "y", "z"), "b": _tokens("y", "q"), "c": _tokens("y", "z")}
    layout = join(tokens, min_sites=2, slots_per_key=3)
    assert layout.groups == 2  # y (3 nodes) and z (2 nodes)
    a, b, c = (layout.placements[n] for n in "abc")
    assert sorted(a.sites.tolist()) == [2, 3] and b.sites.tolist() == [3]
    bases = {int(x) for p in (a, b, c) for x in p.base}
    assert len(bases) == 2 and all(x % 3 == 0 for x in bases)
    for base in bases:  # exactly one leader per group
        leaders = sum(int(p.leader[p.base == base].sum()) for p in (a, b, c))
        assert leaders == 1
    # indices point into each node's sorted token list
    assert {bytes(tokens["b"][i]) for i in b.index} == {b"y".ljust(16, b".")}


def test_a_statistic_gives_every_group_slots() -> None:
    layout = join({"a": _tokens("x"), "b": _tokens("y")}, min_sites=1, slots_per_key=1)
    assert layout.groups == 2


def test_groups_never_straddle_two_ciphertexts() -> None:
    names = [f"k{i}" for i in range(40)]
    layout = join({"a": _tokens(*names), "b": _tokens(*names)}, 2, slots_per_key=600)
    base = layout.placements["a"].base
    assert ((base % SLOTS) + 600 <= SLOTS).all()
    assert layout.chunks == -(-40 // (SLOTS // 600))


def test_token_order_sorts_like_bytes_even_when_first_halves_tie() -> None:
    from fedrisk.protos.matching import token_order

    rng = np.random.default_rng(3)
    tokens = rng.integers(0, 256, (500, 16), dtype=np.uint8)
    tokens[10:20, :8] = tokens[0, :8]  # different tokens sharing their first 8 bytes
    tokens[30:40] = tokens[1]  # equal tokens: their order must stay as given
    order = token_order(tokens)
    as_bytes = sorted(range(len(tokens)), key=lambda i: (tokens[i].tobytes(), i))
    assert order.tolist() == as_bytes
    shared = tokens.copy()
    shared[5:9] = shared[4]  # only equal tokens tie: the fast path
    assert token_order(shared).tolist() == sorted(
        range(len(shared)), key=lambda i: (shared[i].tobytes(), i)
    )
