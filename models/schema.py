"""Data contract v1: the columns, value sets and formats of claims, fee lines and labels.

Key names live here once; every reader, writer and validator of contract data imports them.
"""

from __future__ import annotations

from typing import Final

CONTRACT_VERSION: Final = "v1"

SETTLEMENT_COLUMNS: Final = (
    "settlement_id",
    "site_id",
    "site_type",
    "patient_id",
    "patient_name",
    "gender",
    "birth_date",
    "insurance_type",
    "visit_type",
    "admit_time",
    "discharge_time",
    "diagnosis_codes",
    "drg_code",
    "doctor_id",
    "pharmacist_id",
    "total_amount",
    "fund_paid",
    "settle_time",
)

LINE_COLUMNS: Final = (
    "settlement_id",
    "site_id",
    "line_no",
    "item_type",
    "item_code",
    "item_name",
    "trace_code",
    "quantity",
    "unit_price",
    "amount",
    "days_supply",
    "order_time",
)

LABEL_COLUMNS: Final = ("settlement_id", "site_id", "label", "violation_type")

TRUTH_COLUMNS: Final = ("incident_id", "rule_id", "site_id", "settlement_id")

SITE_TYPES: Final = ("hospital", "clinic", "pharmacy")
GENDERS: Final = ("M", "F")
INSURANCE_TYPES: Final = ("employee", "resident")
VISIT_TYPES: Final = ("outpatient", "inpatient", "pharmacy")
ITEM_TYPES: Final = ("drug", "consumable", "service")

# Identifiers that never leave the identity vault in clear.
SENSITIVE_SETTLEMENT_COLUMNS: Final = ("patient_id", "patient_name")
VAULTED_IDENTIFIERS: Final = ("patient_id", "doctor_id", "pharmacist_id")
# Values whose content a reject message must not repeat (identifiers and quasi-identifiers).
UNECHOED_COLUMNS: Final = ("patient_id", "patient_name", "birth_date", "doctor_id", "pharmacist_id")

UNKNOWN_DOCTOR: Final = "UNKNOWN"

DATE_FORMAT: Final = "%Y-%m-%d"
DATETIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"
# Money: RMB, at most two decimals. Quantity: a positive decimal, at most three decimals.
MONEY_PATTERN: Final = r"^[0-9]{1,12}(\.[0-9]{1,2})?$"
QUANTITY_PATTERN: Final = r"^[0-9]{1,9}(\.[0-9]{1,3})?$"
INTEGER_PATTERN: Final = r"^[0-9]{1,9}$"
PATIENT_ID_PATTERN: Final = r"^[0-9]{17}[0-9X]$"
TRACE_CODE_PATTERN: Final = r"^[0-9]{20}$"
ICD10_PATTERN: Final = r"^[A-Z][0-9]{2}(\.[0-9A-Za-z]{1,4})?$"
AMOUNT_TOLERANCE: Final = 0.01

RULE_IDS: Final = (
    "gender_conflict",
    "age_conflict",
    "over_quantity",
    "indication_mismatch",
    "interaction",
    "duplicate_trace_code",
    "cross_site_over_quantity",
    "monthly_pharmacy_spend",
    "batch_prescribing",
    "split_admission",
    "prescriber_outlier",
    "pharmacist_multi_site",
    "data_quality",
)
MODEL_VIOLATION: Final = "other"

# GB 11643 national ID check digit (ISO 7064 MOD 11-2).
_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK: Final = "10X98765432"


def national_id_check_digit(first17: str) -> str:
    """The check digit of an 18-character national ID, from its first 17 digits."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]
