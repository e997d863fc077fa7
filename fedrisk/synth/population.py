"""People of the federation: insured patients (shared by all sites) and each site's staff.

Patients carry a valid 18-character national ID (GB 11643: region, date of birth, a sequence
number whose last digit is odd for men and even for women, check digit), a name like
``患者012345``, a sex and a date of birth consistent with the ID, and an insurance type.
Doctors (``D`` + 10 digits) and pharmacists (``Y`` + 10 digits) belong to one site each.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from fedrisk.synth.clock import I64, PERIOD_START, unix_day, ymd
from fedrisk.synth.sites import SiteProfile

REGIONS: Final = (
    "330102",
    "330105",
    "330106",
    "330108",
    "330109",
    "330110",
    "330122",
    "110101",
    "310104",
    "420102",
    "440305",
    "510107",
)
_REGION_WEIGHTS: Final = (12, 12, 14, 10, 10, 10, 8, 4, 5, 5, 5, 5)
_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK: Final = "10X98765432"
_SEQ_SLOTS: Final = 500
MALE: Final = 1
FEMALE: Final = 0
GENDER_LETTERS: Final = ("F", "M")
INSURANCE_TYPES: Final = ("employee", "resident")


class Population:
    """The patients: arrays indexed by patient number, growing as patients are added.

    Parameters
    ----------
    gender, birth, region, insurance
        Per patient: 1 = male, 0 = female; days since 1970-01-01; index into ``REGIONS``;
        0 = employee, 1 = resident.
    """

    def __init__(self, gender: I64, birth: I64, region: I64, insurance: I64) -> None:
        self._size = len(gender)
        self.gender = gender.copy()
        self.birth = birth.copy()
        self.region = region.copy()
        self.insurance = insurance.copy()
        keys = self._key(self.region, self.birth, self.gender)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(ordered)]))
        rank = np.empty(len(keys), dtype=np.int64)
        rank[order] = np.arange(len(keys)) - group_start
        if len(rank) and int(rank.max()) >= _SEQ_SLOTS:
            raise ValueError("too many patients share a region, birth date and sex")
        self.rank = rank
        uniq, counts = np.unique(keys, return_counts=True)
        self._used: dict[int, int] = dict(zip(uniq.tolist(), counts.tolist(), strict=True))

    @staticmethod
    def _key(region: I64, birth: I64, gender: I64) -> I64:
        return np.asarray((region * 100_000 + birth) * 2 + gender, dtype=np.int64)

    def __len__(self) -> int:
        return self._size

    def add(self, gender: int, birth: int, region: int, insurance: int) -> int:
        """Add one patient (a new national ID for the given region, birth date and sex)."""
        key = int((region * 100_000 + birth) * 2 + gender)
        rank = self._used.get(key, 0)
        if rank >= _SEQ_SLOTS:
            region = (region + 1) % len(REGIONS)
            return self.add(gender, birth, region, insurance)
        self._used[key] = rank + 1
        if self._size == len(self.gender):
            grow = max(64, self._size // 4)
            for name in ("gender", "birth", "region", "insurance", "rank"):
                old = getattr(self, name)
                setattr(self, name, np.concatenate([old, np.zeros(grow, dtype=np.int64)]))
        i = self._size
        self.gender[i], self.birth[i], self.region[i] = gender, birth, region
        self.insurance[i], self.rank[i] = insurance, rank
        self._size += 1
        return i

    def clone(self, patient: int) -> int:
        """A new patient of the same sex, birth date, region and insurance (another person)."""
        return self.add(
            int(self.gender[patient]),
            int(self.birth[patient]),
            int(self.region[patient]),
            int(self.insurance[patient]),
        )

    def national_ids(self) -> npt.NDArray[np.object_]:
        """The 18-character national ID of every patient."""
        n = self._size
        gender, birth, region = self.gender[:n], self.birth[:n], self.region[:n]
        key = self._key(region, birth, gender)
        seq = ((self.rank[:n] + key % _SEQ_SLOTS) % _SEQ_SLOTS) * 2 + gender
        year, month, day = ymd(birth)
        body = np.zeros((n, 17), dtype=np.int64)
        region_digits = np.array([[int(c) for c in r] for r in REGIONS], dtype=np.int64)
        body[:, :6] = region_digits[region]
        for pos, (value, width) in enumerate(((year, 4), (month, 2), (day, 2), (seq, 3))):
            start = 6 + sum((4, 2, 2, 3)[:pos])
            for k in range(width):
                body[:, start + k] = value // 10 ** (width - 1 - k) % 10
        check = (body @ np.array(_ID_WEIGHTS, dtype=np.int64)) % 11
        regions = np.array(REGIONS, dtype=object)[region]
        out = [
            f"{r}{y:04d}{m:02d}{d:02d}{s:03d}{_ID_CHECK[c]}"
            for r, y, m, d, s, c in zip(
                regions.tolist(),
                year.tolist(),
                month.tolist(),
                day.tolist(),
                seq.tolist(),
                check.tolist(),
                strict=True,
            )
        ]
        return np.array(out, dtype=object)

    def names(self) -> npt.NDArray[np.object_]:
        """``患者`` and the six-digit patient number."""
        return np.array([f"患者{i:06d}" for i in range(self._size)], dtype=object)


def make_population(size: int, rng: np.random.Generator) -> Population:
    """``size`` patients: about 1% infants, 5% children and 94% adults aged 18 to 92."""
    start = unix_day(PERIOD_START.date())
    kind = rng.choice(3, size=size, p=[0.01, 0.05, 0.94])
    ages = np.arange(18, 93)
    weights = np.where(ages <= 65, 1 + (ages - 18) / 12, 1 + (65 - 18) / 12 - (ages - 65) / 8)
    adult_age = rng.choice(ages, size=size, p=weights / weights.sum())
    adult = start - (adult_age * 365.25).astype(np.int64) - rng.integers(1, 365, size=size)
    child = start - rng.integers(750, 6_500, size=size)
    infant = start - rng.integers(60, 630, size=size)
    birth = np.where(kind == 0, infant, np.where(kind == 1, child, adult)).astype(np.int64)
    gender = rng.integers(0, 2, size=size).astype(np.int64)
    region_p = np.array(_REGION_WEIGHTS, dtype=np.float64)
    region = rng.choice(len(REGIONS), size=size, p=region_p / region_p.sum()).astype(np.int64)
    age = (start - birth) // 365
    employee_p = np.where(age < 18, 0.0, np.where(age <= 60, 0.75, 0.5))
    insurance = (rng.random(size) >= employee_p).astype(np.int64)
    return Population(gender, birth, region, insurance)


@dataclass(frozen=True)
class Staff:
    """Doctors and pharmacists of all sites; each belongs to one site.

    ``doctor_offset[s]`` is the index of site ``s``'s first doctor (likewise pharmacists).
    """

    doctor_ids: tuple[str, ...]
    doctor_site: I64
    doctor_offset: tuple[int, ...]
    pharmacist_ids: tuple[str, ...]
    pharmacist_site: I64
    pharmacist_offset: tuple[int, ...]

    def doctors_of(self, site: SiteProfile) -> range:
        """Indices of a site's doctors."""
        start = self.doctor_offset[site.index]
        return range(start, start + site.doctors)

    def pharmacists_of(self, site: SiteProfile) -> range:
        """Indices of a site's pharmacists."""
        start = self.pharmacist_offset[site.index]
        return range(start, start + site.pharmacists)


def make_staff(sites: tuple[SiteProfile, ...]) -> Staff:
    """``D`` or ``Y``, six digits of the site code and a four-digit staff number."""
    doctors: list[str] = []
    doctor_site: list[int] = []
    doctor_offset: list[int] = []
    pharmacists: list[str] = []
    pharmacist_site: list[int] = []
    pharmacist_offset: list[int] = []
    for site in sites:
        doctor_offset.append(len(doctors))
        pharmacist_offset.append(len(pharmacists))
        for j in range(site.doctors):
            doctors.append(f"D{site.digits[2:]}{j + 1:04d}")
            doctor_site.append(site.index)
        for j in range(site.pharmacists):
            pharmacists.append(f"Y{site.digits[2:]}{j + 1:04d}")
            pharmacist_site.append(site.index)
    return Staff(
        tuple(doctors),
        np.array(doctor_site, dtype=np.int64),
        tuple(doctor_offset),
        tuple(pharmacists),
        np.array(pharmacist_site, dtype=np.int64),
        tuple(pharmacist_offset),
    )
