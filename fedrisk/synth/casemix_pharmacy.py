"""The case mix of pharmacies: purchases of one or two drugs of one condition.

Weights are relative among pharmacy templates; each template's drugs fit its diagnoses.
"""

from __future__ import annotations

from typing import Final

from fedrisk.synth.casemix import LOW3, LOW4, LOW6, Q3, Q4, Q6
from fedrisk.synth.templates import (
    AMLODIPINE,
    ATORVASTATIN,
    CALCIUM,
    CLOPIDOGREL,
    ENTECAVIR,
    EPO,
    IBUPROFEN,
    IMATINIB,
    INSULIN,
    LENALIDOMIDE,
    LEVETIRACETAM,
    LEVOTHYROXINE,
    LOSARTAN,
    METFORMIN,
    NICOTINAMIDE,
    NITRO,
    OMEPRAZOLE,
    PROGESTERONE,
    SEMAGLUTIDE,
    SERTRALINE,
    SILDENAFIL,
    TAMSULOSIN,
    TIOTROPIUM,
    WARFARIN,
    LineSpec,
    Template,
)

L = LineSpec


def _pha(
    key: str,
    weight: float,
    dx: tuple[str, ...],
    *lines: LineSpec,
    cond: str | None = None,
    gender: str | None = None,
    ages: tuple[int, int] = (18, 95),
    visits: float = 4.0,
) -> Template:
    """A pharmacy purchase of one or two drugs."""
    return Template(
        key,
        "pharmacy",
        weight,
        dx,
        lines,
        cond=cond,
        gender=gender,
        min_age=ages[0],
        max_age=ages[1],
        visits=visits,
    )


PHARMACY: Final = (
    _pha(
        "metformin",
        8,
        ("E11.900",),
        L(METFORMIN, 1, Q6, LOW6),
        L(INSULIN, 0.3, Q4, LOW4),
        cond="dm",
    ),
    _pha(
        "dm_htn",
        2,
        ("E11.900|I10.x00",),
        L(METFORMIN, 1, Q6, LOW6),
        L(AMLODIPINE, 0.8, Q3, LOW3),
        cond="dm",
    ),
    _pha(
        "cv_combo",
        3,
        ("E78.500|I10.x00", "I10.x00|E78.500"),
        L(ATORVASTATIN, 1, Q4, LOW4),
        L(AMLODIPINE, 0.8, Q3, LOW3),
        cond="htn",
    ),
    _pha("glp1", 1.2, ("E11.900",), L(SEMAGLUTIDE, 1, Q3, LOW3), cond="dm"),
    _pha("insulin", 2, ("E11.900",), L(INSULIN, 1, Q6, LOW6), cond="dm"),
    _pha(
        "amlodipine",
        6,
        ("I10.x00",),
        L(AMLODIPINE, 1, Q4, LOW4),
        L(LOSARTAN, 0.45, Q3, LOW3),
        cond="htn",
    ),
    _pha("losartan", 4, ("I10.x00",), L(LOSARTAN, 1, Q4, LOW4), cond="htn"),
    _pha("statin", 5, ("E78.500",), L(ATORVASTATIN, 1, Q4, LOW4), cond="lipid"),
    _pha(
        "chd",
        3,
        ("I25.100",),
        L(CLOPIDOGREL, 1, Q3, LOW3),
        L(ATORVASTATIN, 0.6, Q3, LOW3),
        cond="chd",
        ages=(40, 95),
    ),
    _pha(
        "stroke2",
        1,
        ("I63.900",),
        L(CLOPIDOGREL, 1, Q3, LOW3),
        L(ATORVASTATIN, 0.6, Q3, LOW3),
        cond="stroke2",
        ages=(40, 95),
    ),
    _pha(
        "nitro",
        0.8,
        ("I20.000",),
        L(NITRO, 1, (1, 2), (0.7, 0.3)),
        L(ATORVASTATIN, 0.5, Q3, LOW3),
        cond="angina",
        ages=(40, 95),
    ),
    _pha("warfarin", 1.5, ("I48.x00",), L(WARFARIN, 1, Q3, LOW3), cond="af", ages=(40, 95)),
    _pha("tiotropium", 2, ("J44.900",), L(TIOTROPIUM, 1, Q3, LOW3), cond="copd", ages=(40, 95)),
    _pha("omeprazole", 3, ("K21.000", "K29.700"), L(OMEPRAZOLE, 1, Q4, LOW4)),
    _pha("sertraline", 2, ("F32.900", "F41.100"), L(SERTRALINE, 1, Q3, LOW3), cond="dep"),
    _pha("entecavir", 1.5, ("B18.100",), L(ENTECAVIR, 1, Q3, LOW3), cond="hbv"),
    _pha(
        "levetiracetam",
        1,
        ("G40.900",),
        L(LEVETIRACETAM, 1, Q6, LOW6),
        cond="epi",
        ages=(2, 95),
    ),
    _pha(
        "tamsulosin",
        1.5,
        ("N40.x00",),
        L(TAMSULOSIN, 1, Q6, LOW6),
        cond="bph",
        gender="M",
        ages=(50, 95),
    ),
    _pha("sildenafil", 0.8, ("N48.400",), L(SILDENAFIL), cond="ed", gender="M", ages=(25, 75)),
    _pha("levothyroxine", 2, ("E03.900",), L(LEVOTHYROXINE), cond="thy"),
    _pha(
        "imatinib",
        0.25,
        ("C92.100",),
        L(IMATINIB, 1, (1, 2), (0.8, 0.2)),
        cond="cml",
        visits=1.5,
    ),
    _pha("lenalidomide", 0.15, ("C90.000",), L(LENALIDOMIDE), cond="mm", visits=1.5),
    _pha("calcium", 2, ("M81.000",), L(CALCIUM, 1, Q3, LOW3), cond="osteo", ages=(50, 95)),
    _pha("ibuprofen", 2.5, ("M54.500",), L(IBUPROFEN), L(CALCIUM, 0.4)),
    _pha("epo", 0.5, ("N18.500", "D64.900"), L(EPO, 1, Q4, LOW4), cond="ckd"),
    _pha(
        "progesterone",
        0.5,
        ("N97.900",),
        L(PROGESTERONE, 1, Q3, LOW3),
        cond="infert",
        gender="F",
        ages=(22, 45),
    ),
    _pha("nicotinamide", 0.8, ("L30.900",), L(NICOTINAMIDE, 1, (1, 2)), ages=(2, 95)),
)
