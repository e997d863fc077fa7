"""TenSEAL contexts: 128-bit parameters, and a public copy that computes but cannot decrypt."""

from __future__ import annotations

import pytest
import tenseal as ts

from fedrisk.crypto.he import (
    BFV,
    CKKS,
    MAX_COEFF_BITS_128,
    HeParams,
    Scheme,
    export_private,
    export_public,
    is_public,
    load_context,
    new_context,
)


@pytest.mark.parametrize("params", [BFV, CKKS], ids=["bfv", "ckks"])
def test_parameters_are_at_128_bits(params: HeParams) -> None:
    assert params.security_128()
    assert params.coeff_bits <= MAX_COEFF_BITS_128[params.poly_modulus_degree]


def test_seal_itself_refuses_parameters_below_128_bits() -> None:
    # 240 bits at N = 8192 exceeds the table: SEAL (under TenSEAL) refuses, as we rely on.
    with pytest.raises(ValueError):
        ts.context(ts.SCHEME_TYPE.CKKS, 8192, coeff_mod_bit_sizes=[60, 60, 60, 60])
    weak = HeParams(Scheme.CKKS, 8192, (60, 60, 60, 60), scale_bits=40)
    with pytest.raises(ValueError, match="128-bit"):
        new_context(weak)


def test_bfv_sums_exactly_and_the_public_copy_cannot_decrypt() -> None:
    node = new_context(BFV)
    coordinator = load_context(export_public(node))
    assert is_public(coordinator) and not is_public(node)
    a = ts.bfv_vector(node, [3, 5, 1_000_000])
    b = ts.bfv_vector(node, [4, -5, 7])
    # the coordinator adds what two nodes sent, without being able to read it
    total = ts.bfv_vector_from(coordinator, a.serialize()) + ts.bfv_vector_from(
        coordinator, b.serialize()
    )
    with pytest.raises(ValueError, match="secret"):
        total.decrypt()
    assert ts.bfv_vector_from(node, total.serialize()).decrypt()[:3] == [7, 0, 1_000_007]


def test_ckks_sums_money_and_the_public_copy_cannot_decrypt() -> None:
    node = new_context(CKKS)
    coordinator = load_context(export_public(node))
    a = ts.ckks_vector(node, [8400.50, 12.34])
    b = ts.ckks_vector(node, [-8000.00, 0.01])
    total = ts.ckks_vector_from(coordinator, a.serialize()) + ts.ckks_vector_from(
        coordinator, b.serialize()
    )
    with pytest.raises(ValueError, match="secret"):
        total.decrypt()
    values = ts.ckks_vector_from(node, total.serialize()).decrypt()
    assert values[0] == pytest.approx(400.50, abs=1e-3)
    assert values[1] == pytest.approx(12.35, abs=1e-3)


def test_private_export_keeps_the_secret_key_and_public_export_drops_it() -> None:
    node = new_context(BFV)
    private = load_context(export_private(node))
    assert not is_public(private)
    assert is_public(load_context(export_public(node)))
    with pytest.raises(ValueError, match="no secret key"):
        export_private(load_context(export_public(node)))
