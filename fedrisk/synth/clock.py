"""Time and money arithmetic of the generator: integer seconds, days and cents, and formatting.

Every time is held as ``int64`` seconds since the start of the data period (2026-01-01T00:00:00),
every date of birth as days since 1970-01-01, every amount as integer cents; strings are made
only when a file is written, column by column.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final

import numpy as np
import numpy.typing as npt

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]

PERIOD_START: Final = datetime(2026, 1, 1)
PERIOD_DAYS: Final = 90  # 2026-01-01 … 2026-03-31
MONTH_STARTS: Final = (0, 31, 59, 90)  # day offsets of Jan, Feb, Mar and the end of March
DAY: Final = 86_400
MINUTE: Final = 60
_EPOCH64: Final = np.datetime64("2026-01-01T00:00:00", "s")
_UNIX_DAY_OF_START: Final = (PERIOD_START.date() - date(1970, 1, 1)).days


def day_date(day: int) -> date:
    """The calendar date of a period day (0 = 2026-01-01)."""
    return PERIOD_START.date() + timedelta(days=int(day))


def unix_day(d: date) -> int:
    """Days since 1970-01-01 of a date (how dates of birth are held)."""
    return (d - date(1970, 1, 1)).days


def from_unix_day(days: int) -> date:
    """The date of a day count since 1970-01-01."""
    return date(1970, 1, 1) + timedelta(days=int(days))


def month_index(seconds: I64) -> I64:
    """Calendar month of period times: 0 = January, 1 = February, 2 = March."""
    days = seconds // DAY
    return np.searchsorted(np.array(MONTH_STARTS[1:3]), days, side="right").astype(np.int64)


def month_bounds(month: int) -> tuple[int, int]:
    """First and last period day of a month index."""
    return MONTH_STARTS[month], MONTH_STARTS[month + 1] - 1


def format_datetimes(seconds: I64) -> list[str]:
    """``YYYY-MM-DDTHH:MM:SS`` of period times; negative values (no time) give ``""``."""
    text = np.datetime_as_string(_EPOCH64 + seconds.astype("timedelta64[s]"), unit="s")
    out: list[str] = text.tolist()
    if (seconds < 0).any():
        for i in np.flatnonzero(seconds < 0).tolist():
            out[i] = ""
    return out


def format_dates(unix_days: I64) -> list[str]:
    """``YYYY-MM-DD`` of day counts since 1970-01-01."""
    out: list[str] = np.datetime_as_string(unix_days.astype("datetime64[D]"), unit="D").tolist()
    return out


def format_money(cents: I64) -> list[str]:
    """Amounts in cents as decimals with two places (``1234`` → ``12.34``)."""
    return [f"{c / 100:.2f}" for c in cents.tolist()]


def ymd(unix_days: I64) -> tuple[I64, I64, I64]:
    """Year, month and day of day counts since 1970-01-01."""
    d = unix_days.astype("datetime64[D]")
    months = d.astype("datetime64[M]")
    year = months.astype("datetime64[Y]").astype(np.int64) + 1970
    month = months.astype(np.int64) % 12 + 1
    day = (d - months.astype("datetime64[D]")).astype(np.int64) + 1
    return year, month, day


def ages_on(birth_days: I64, on: date) -> I64:
    """Age in completed years on a date; the birthday itself counts as a year completed."""
    year, month, day = ymd(birth_days)
    before = (on.month * 100 + on.day) < (month * 100 + day)
    return np.asarray(on.year - year - before.astype(np.int64), dtype=np.int64)


def age_on(birth: date, on: date) -> int:
    """Age in completed years of one person on a date (see ``ages_on``)."""
    return on.year - birth.year - (1 if (on.month, on.day) < (birth.month, birth.day) else 0)
