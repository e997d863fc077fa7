"""Visit templates of the clean bulk: which diagnosis goes with which drugs and services.

A template is one kind of visit at one kind of site (a hospital stay for pneumonia, a pharmacy
refill of metformin, …). Its lines are drawn independently with an inclusion probability and a
quantity distribution. The figures are clinically plausible defaults; ``catalog.build_catalog``
checks every template against the knowledge base in use and tightens or drops what breaks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class LineSpec:
    """One possible fee line of a template.

    ``q`` are the quantity choices (weights ``w``, uniform when ``None``); with ``per_day`` the
    drawn quantity is multiplied by the stay days (bed days: ``q=(1,)``).
    """

    code: str
    p: float = 1.0
    q: tuple[int, ...] = (1,)
    w: tuple[float, ...] | None = None
    per_day: bool = False


@dataclass(frozen=True)
class Template:
    """One kind of visit; see the module docstring."""

    key: str
    visit: str
    weight: float
    dx: tuple[str, ...]
    lines: tuple[LineSpec, ...]
    cond: str | None = None
    gender: str | None = None
    min_age: int = 18
    max_age: int = 95
    drg: str = ""
    upcode: str = ""
    los: tuple[int, int] = (1, 1)
    visits: float = 4.0
    comorb: float = 0.2
    clinic_weight: float = 0.0


CONSULT: Final = "S110100001"
BED: Final = "S120100001"
INFUSION: Final = "S121400001"
CBC: Final = "S250101001"
GLUCOSE: Final = "S250305001"
ECG: Final = "S230200001"
CT: Final = "S210100001"
MRI: Final = "S210300001"
DIALYSIS: Final = "S310800001"
ENDOSCOPY: Final = "S310701001"
REHAB: Final = "S240300001"
HOSPITAL_ONLY: Final = frozenset(
    {
        "S331302001",
        "S311202001",
        "S331202010",
        "S331202011",
        "S311000001",
        ENDOSCOPY,
        "S330101001",
        "S331400001",
        "S310300001",
        CT,
        MRI,
        DIALYSIS,
        "S330300001",
    }
)
# Services whose presence must be explained by the diagnosis (model-only fraud adds them).
HEAVY_SERVICES: Final = (MRI, CT, ENDOSCOPY, DIALYSIS)
COMORBIDITIES: Final = ("I10.x00", "E78.500", "E11.900")

METFORMIN, INSULIN, SEMAGLUTIDE = "XA10BA02001", "XA10AE04001", "XA10BJ06001"
ATORVASTATIN, CLOPIDOGREL, NITRO = "XC10AA05001", "XB01AC04001", "XC01DA02001"
AMLODIPINE, LOSARTAN, WARFARIN = "XC08CA01001", "XC09CA01001", "XB01AA03001"
TIOTROPIUM, CEFTRIAXONE, OMEPRAZOLE = "XR03BB04001", "XJ01DD04001", "XA02BC01001"
SERTRALINE, ENTECAVIR, EPO = "XN06AB06001", "XJ05AF10001", "XB03XA01001"
LEVETIRACETAM, TAMSULOSIN, SILDENAFIL = "XN03AX14001", "XG04CA02001", "XG04BE03001"
LEVOTHYROXINE, IMATINIB, LENALIDOMIDE = "XH03AA01001", "XL01EA01001", "XL04AX04001"
CALCIUM, IBUPROFEN, PROGESTERONE = "XA12AA04001", "XM01AE01001", "XG03DA04001"
HCG, NICOTINAMIDE = "XG03GA01001", "XA11HA01001"
INPATIENT_SHARE: Final = 0.13
# Diagnoses used only by incidents (no clean template needs them).
EXTRA_DX: Final = ("Z31.800", "F52.000", "N84.000", "R10.400", "D64.900")
