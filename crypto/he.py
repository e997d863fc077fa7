"""Homomorphic-encryption contexts (TenSEAL): BFV for exact counts, CKKS for money.

Nodes hold a context *with* its secret key; the coordinator gets a copy *without* it, with which
it can add and multiply ciphertexts but not decrypt them. What the coordinator learns from a
ciphertext: its size, which is fixed by the parameters — nothing of the values.

Parameters are at the 128-bit level of the HomomorphicEncryption.org standard, which SEAL
enforces (it refuses a larger coefficient modulus than the table below allows):

======  ==========================  =========================================
scheme  poly modulus degree N       coefficient modulus
======  ==========================  =========================================
BFV     8192 (8192 slots)           218 bits (SEAL's default for N = 8192);
                                    plain modulus 576460752303210497 (a 59-bit
                                    prime ≡ 1 mod 2N: room for masked sums,
                                    see :mod:`fedrisk.crypto.blindsum`)
CKKS    8192 (4096 slots)           [60, 40, 40, 60] = 200 bits, scale 2^40
======  ==========================  =========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import tenseal as ts


class Scheme(StrEnum):
    BFV = "bfv"
    CKKS = "ckks"


# Largest total coefficient modulus (bits) for 128-bit security, per poly modulus degree.
MAX_COEFF_BITS_128 = {1024: 27, 2048: 54, 4096: 109, 8192: 218, 16384: 438, 32768: 881}


@dataclass(frozen=True)
class HeParams:
    """The parameters of one context."""

    scheme: Scheme
    poly_modulus_degree: int
    coeff_mod_bit_sizes: tuple[int, ...]
    plain_modulus: int | None = None  # BFV only
    scale_bits: int | None = None  # CKKS only

    @property
    def coeff_bits(self) -> int:
        return sum(self.coeff_mod_bit_sizes)

    @property
    def slots(self) -> int:
        n = self.poly_modulus_degree
        return n if self.scheme is Scheme.BFV else n // 2

    def security_128(self) -> bool:
        """Whether these parameters are within the 128-bit table."""
        limit = MAX_COEFF_BITS_128.get(self.poly_modulus_degree)
        return limit is not None and self.coeff_bits <= limit


BFV = HeParams(Scheme.BFV, 8192, (43, 43, 44, 44, 44), plain_modulus=576460752303210497)
CKKS = HeParams(Scheme.CKKS, 8192, (60, 40, 40, 60), scale_bits=40)


def new_context(params: HeParams) -> ts.Context:
    """A fresh context with a new secret key (made by the federation's key creator)."""
    if not params.security_128():
        raise ValueError(f"{params} is below 128-bit security")
    if params.scheme is Scheme.BFV:
        context = ts.context(
            ts.SCHEME_TYPE.BFV,
            poly_modulus_degree=params.poly_modulus_degree,
            plain_modulus=params.plain_modulus,
            coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
        )
    else:
        context = ts.context(
            ts.SCHEME_TYPE.CKKS,
            poly_modulus_degree=params.poly_modulus_degree,
            coeff_mod_bit_sizes=list(params.coeff_mod_bit_sizes),
        )
        context.global_scale = 2.0 ** (params.scale_bits or 40)
    return context


def export_private(context: ts.Context) -> bytes:
    """The context with its secret key: for nodes only, and only inside a sealed envelope."""
    if not context.has_secret_key():
        raise ValueError("this context has no secret key to export")
    return bytes(context.serialize(save_secret_key=True))


def export_public(context: ts.Context) -> bytes:
    """The context without its secret key: what the coordinator may hold."""
    return bytes(context.serialize(save_secret_key=False))


def load_context(data: bytes) -> ts.Context:
    """A context from :func:`export_private` or :func:`export_public` bytes."""
    return ts.context_from(data)


def is_public(context: ts.Context) -> bool:
    """True when the context cannot decrypt."""
    return not context.has_secret_key()
