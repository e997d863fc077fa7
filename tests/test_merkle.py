"""The Merkle tree against published known answers (transparency-dev/merkle) and itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedrisk.crypto.merkle import (
    EMPTY_ROOT,
    CompactRange,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962.json").read_text())
LEAVES = [leaf_hash(bytes.fromhex(x)) for x in VECTORS["leaf_inputs"]]


def _hex(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


@pytest.mark.parametrize("size", range(len(VECTORS["roots"])))
def test_roots_match_published_values(size: int) -> None:
    assert root_of(LEAVES[:size]).hex() == VECTORS["roots"][size]


def test_empty_tree_is_hash_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == VECTORS["roots"][0]


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['dir']}-{c['name']}")
def test_inclusion_vectors(case: dict[str, object]) -> None:
    args = (
        case["leaf_index"],
        case["tree_size"],
        bytes.fromhex(str(case["leaf_hash"])),
        _hex(case["proof"]),  # type: ignore[arg-type]
        bytes.fromhex(str(case["root"])),
    )
    if case["want_error"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)  # type: ignore[arg-type]
    else:
        verify_inclusion(*args)  # type: ignore[arg-type]
        # and our own generator produces the published proof
        assert inclusion_proof(LEAVES, case["leaf_index"], case["tree_size"]) == args[3]  # type: ignore[arg-type]


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['dir']}-{c['name']}")
def test_consistency_vectors(case: dict[str, object]) -> None:
    args = (
        case["size1"],
        case["size2"],
        bytes.fromhex(str(case["root1"])),
        bytes.fromhex(str(case["root2"])),
        _hex(case["proof"]),  # type: ignore[arg-type]
    )
    if case["want_error"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)  # type: ignore[arg-type]
    else:
        verify_consistency(*args)  # type: ignore[arg-type]
        assert consistency_proof(LEAVES, case["size1"], case["size2"]) == args[4]  # type: ignore[arg-type]


def test_vectors_cover_both_outcomes() -> None:
    for kind in ("inclusion", "consistency"):
        outcomes = {c["want_error"] for c in VECTORS[kind]}
        assert outcomes == {True, False}, kind


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@given(st.integers(1, 70).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_every_inclusion_proof_verifies_and_no_other_leaf_does(case: tuple[int, int]) -> None:
    n, index = case
    leaves = _leaves(n)
    proof = inclusion_proof(leaves, index)
    verify_inclusion(index, n, leaves[index], proof, root_of(leaves))
    with pytest.raises(ProofError):
        verify_inclusion(index, n, leaf_hash(b"other"), proof, root_of(leaves))


@given(st.integers(0, 70).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_every_consistency_proof_verifies(case: tuple[int, int]) -> None:
    old, new = case
    leaves = _leaves(new)
    proof = consistency_proof(leaves, old, new)
    verify_consistency(old, new, root_of(leaves[:old]), root_of(leaves), proof)
    if 0 < old < new:
        rewritten = [leaf_hash(b"rewritten"), *leaves[1:]]
        with pytest.raises(ProofError):
            verify_consistency(old, new, root_of(rewritten[:old]), root_of(leaves), proof)


def test_compact_range_resumes_from_its_nodes() -> None:
    leaves = _leaves(37)
    edge = CompactRange()
    edge.extend(leaves[:20])
    resumed = CompactRange(edge.size, edge.nodes)
    resumed.extend(leaves[20:])
    assert resumed.root() == root_of(leaves)
    with pytest.raises(ValueError):
        CompactRange(7, edge.nodes)  # 7 leaves make three perfect subtrees, not two
