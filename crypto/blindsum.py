"""Encrypted slot sums of which only the sign can be read (BFV, through TenSEAL).

Cross-site matching (ARCHITECTURE.md) needs one bit per key that several nodes hold: is the sum
of the nodes' values over a limit? The steps, and what each party learns:

1. **Encrypt** (a node, :func:`encrypt_slots`). The node puts its values — integers in
   [0, :data:`CAP`] — into the slots the coordinator assigned to its keys. Where the node is the
   group's *leader* it also subtracts the group's limit, which only nodes know (it may depend on
   the drug). The node encrypts one ciphertext per chunk of :data:`SLOTS` slots it writes to,
   under the federation's BFV key. The coordinator learns which chunks a node wrote to (it
   assigned the slots itself), and nothing of the values.
2. **Add and mask** (the coordinator, :func:`add` then :func:`mask_sign`). The coordinator adds
   the ciphertexts slot by slot. It then replaces every slot's ``d = sum − limit`` by
   ``f·d − o``:
   - ``f`` is a fresh random factor in [1, F], with F small enough that the product cannot
     wrap around the plain modulus;
   - ``o`` is a random offset in [0, f).

   The result is > 0 exactly when ``d ≥ 1``. Its size says little about ``d``, because ``d``
   is scaled by a factor nobody knows. The coordinator's context has no secret key: it adds
   and multiplies ciphertexts it cannot read.
3. **Hide the others** (the coordinator, :func:`keep_only`). For each node, the coordinator
   overwrites every slot the node has no key in with a uniform random value. A node therefore
   cannot read the outcome of another node's groups.
4. **Read** (the node, :func:`decrypt_slots`). The node decrypts, and reads the sign of its own
   slots only.

Randomness comes from the operating system's CSPRNG (:func:`os.urandom`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import tenseal as ts
from numpy.typing import NDArray

from fedrisk.crypto import he

SLOTS = he.BFV.slots  # slots of one ciphertext ("a chunk")
PLAIN_MODULUS = he.BFV.plain_modulus or 0
CAP = 2**32 - 1  # the largest value, or limit, a node may put into a slot to be masked
STATISTIC_CAP = 2**44  # the largest value of an unmasked sum (a statistic): cannot wrap
MAX_CONTRIBUTORS = 4096

Int64s = NDArray[np.int64]


class BlindSumError(ValueError):
    """Values out of range, or ciphertexts that do not belong together."""


def chunks(positions: Int64s) -> Int64s:
    """The chunk (ciphertext index) of each absolute slot position."""
    return positions // SLOTS


def encrypt_slots(
    context: ts.Context, positions: Int64s, values: Int64s, cap: int = CAP
) -> dict[int, bytes]:
    """A node's step: ``values`` at absolute slot ``positions`` (zero elsewhere), one serialized
    ciphertext per chunk that holds any of them. Values at one position add up."""
    if len(positions) != len(values):
        raise BlindSumError(f"{len(positions)} positions but {len(values)} values")
    if len(values) and int(np.abs(values).max()) > cap:
        raise BlindSumError(f"a slot value beyond ±{cap}")
    sealed: dict[int, bytes] = {}
    which = chunks(positions)
    for chunk in np.unique(which).tolist():
        here = which == chunk
        plain = np.zeros(SLOTS, np.int64)
        np.add.at(plain, positions[here] % SLOTS, values[here])
        sealed[int(chunk)] = bytes(ts.bfv_vector(context, plain.tolist()).serialize())
    return sealed


def add(context: ts.Context, parts: Sequence[bytes]) -> ts.BFVVector:
    """The coordinator's step: the slot-wise sum of the nodes' ciphertexts of one chunk."""
    if not parts:
        raise BlindSumError("nothing to add")
    total = ts.bfv_vector_from(context, parts[0])
    for part in parts[1:]:
        total += ts.bfv_vector_from(context, part)
    return total


def mask_sign(total: ts.BFVVector, contributors: int) -> ts.BFVVector:
    """The coordinator's step: every slot ``d`` becomes ``f·d − o`` (> 0 exactly when d ≥ 1).

    ``contributors`` bounds how many nodes added into a slot: each put in at most :data:`CAP`
    and a leader took off a limit of at most :data:`CAP`, so ``|d| ≤ contributors·CAP``.
    """
    if not 1 <= contributors <= MAX_CONTRIBUTORS:
        raise BlindSumError(f"{contributors} contributors: 1 to {MAX_CONTRIBUTORS} are supported")
    factor_max = (PLAIN_MODULUS // 2 - 1) // (contributors * CAP + 1)
    factor = 1 + _random_below_each(np.full(SLOTS, factor_max, np.int64))
    offset = _random_below_each(factor)
    return total * factor.tolist() - offset.tolist()


def keep_only(masked: ts.BFVVector, own: Int64s) -> bytes:
    """The coordinator's step, per node: the chunk with every slot but ``own`` (offsets within
    the chunk) replaced by a uniform random value, serialized for that node."""
    noise = _random_below(SLOTS, PLAIN_MODULUS)
    noise[own] = 0
    # centred, as TenSEAL encodes and decodes BFV plaintexts
    noise = np.where(noise > PLAIN_MODULUS // 2, noise - PLAIN_MODULUS, noise)
    return bytes((masked + noise.tolist()).serialize())


def decrypt_slots(context: ts.Context, ciphertext: bytes, own: Int64s) -> Int64s:
    """A node's step: the values of its ``own`` slots (offsets within the chunk)."""
    values = np.asarray(ts.bfv_vector_from(context, ciphertext).decrypt(), np.int64)
    return values[own]


def _random_below(count: int, bound: int) -> Int64s:
    """``count`` integers uniform in [0, bound), by rejection (no modulo bias)."""
    bits = max(1, (bound - 1).bit_length())
    mask = np.uint64((1 << bits) - 1)
    out = np.empty(0, np.uint64)
    while len(out) < count:
        draw = np.frombuffer(os.urandom(8 * count), np.uint64) & mask
        out = np.concatenate([out, draw[draw < np.uint64(bound)]])
    return out[:count].astype(np.int64)


def _random_below_each(bounds: Int64s) -> Int64s:
    """One integer uniform in [0, b) for each ``b`` ≤ 2^32 (modulo bias below 2^-32)."""
    if len(bounds) and (int(bounds.min()) < 1 or int(bounds.max()) > 2**32):
        raise BlindSumError("random bounds must lie in [1, 2^32]")
    draw = np.frombuffer(os.urandom(8 * len(bounds)), np.uint64)
    return (draw % bounds.astype(np.uint64)).astype(np.int64)
