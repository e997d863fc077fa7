"""The sites of a generated federation: their type, code, size and staff counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np

SITE_LETTERS: Final = {"hospital": "H", "clinic": "C", "pharmacy": "P"}
_FIRST_TYPES: Final = ("hospital", "pharmacy", "pharmacy", "clinic")
_LATER_TYPES: Final = ("hospital", "pharmacy", "clinic")
MIN_SITE_SETTLEMENTS: Final = 50


@dataclass(frozen=True)
class SiteProfile:
    """One designated institution of the federation.

    Attributes
    ----------
    index
        Position of the site (0-based); arrays of the generator name sites by it.
    site_id
        The institution code: a letter (H, C, P) and 8 digits.
    site_type
        ``hospital``, ``clinic`` or ``pharmacy``.
    settlements
        How many settlements of the clean bulk the site has.
    doctors, pharmacists
        Staff counts (doctors at hospitals and clinics, pharmacists at pharmacies).
    """

    index: int
    site_id: str
    site_type: str
    settlements: int
    doctors: int
    pharmacists: int

    @property
    def digits(self) -> str:
        """The 8 digits of the site code."""
        return self.site_id[1:]

    @property
    def has_doctors(self) -> bool:
        """Whether settlements of the site name a prescribing doctor."""
        return self.site_type != "pharmacy"


def site_type_of(index: int) -> str:
    """Site types cycle hospital, pharmacy, pharmacy, clinic, then hospital, pharmacy, clinic."""
    if index < len(_FIRST_TYPES):
        return _FIRST_TYPES[index]
    return _LATER_TYPES[(index - len(_FIRST_TYPES)) % len(_LATER_TYPES)]


def site_code(index: int) -> str:
    """Eight unique digits for the site of an index (``33010000``, ``33010111``, …)."""
    return f"{33010000 + index * 101 + (index % 7) * 10:08d}"


def plan_sites(sites: int, settlements: int, rng: np.random.Generator) -> tuple[SiteProfile, ...]:
    """Types, codes and sizes of ``sites`` sites whose sizes average ``settlements``.

    Sizes spread between about ×0.6 and ×1.4 of the mean, in random order, and sum exactly to
    ``sites × settlements``.
    """
    if sites < 1:
        raise ValueError("sites must be at least 1")
    if settlements < MIN_SITE_SETTLEMENTS:
        raise ValueError(f"settlements must be at least {MIN_SITE_SETTLEMENTS}")
    factors = np.linspace(0.6, 1.4, sites) if sites > 1 else np.ones(1)
    factors = factors[rng.permutation(sites)]
    sizes = np.floor(factors * settlements).astype(np.int64)
    sizes[int(np.argmin(sizes))] += sites * settlements - int(sizes.sum())
    out = []
    for i in range(sites):
        kind = site_type_of(i)
        n = int(sizes[i])
        doctors = int(np.clip(round(n / 30), 4, 400)) if kind != "pharmacy" else 0
        pharmacists = int(np.clip(round(n / 4000) + 3, 3, 30)) if kind == "pharmacy" else 0
        site_id = SITE_LETTERS[kind] + site_code(i)
        out.append(SiteProfile(i, site_id, kind, n, doctors, pharmacists))
    return tuple(out)
