"""node/checks.py against straightforward per-value Python: the vectorised checks must agree."""

from __future__ import annotations

import re
from datetime import datetime

import pyarrow as pa
from hypothesis import example, given
from hypothesis import strategies as st

from fedrisk.models.schema import DATE_FORMAT, DATETIME_FORMAT
from fedrisk.node import checks

_EPOCH = datetime(1970, 1, 1)
_SHAPES = {
    DATE_FORMAT: r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}",
    DATETIME_FORMAT: r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]",
}


def _expected(value: str, fmt: str) -> datetime | None:
    """The contract's rule: the exact shape, and a real date (Python's parser is strict)."""
    if not re.fullmatch(_SHAPES[fmt], value, flags=re.ASCII):
        return None
    try:
        return datetime.strptime(value, fmt)
    except ValueError:
        return None


def _near_dates(fmt: str) -> st.SearchStrategy[str]:
    """Dates and times with every field pushed to and past its limits, and stray characters."""
    fields = st.tuples(
        st.integers(0, 9999),
        st.integers(0, 13),
        st.integers(0, 32),
        st.integers(0, 24),
        st.integers(0, 60),
        st.integers(0, 60),
    )
    text = fields.map(
        lambda f: (
            f"{f[0]:04d}-{f[1]:02d}-{f[2]:02d}"
            + ("" if fmt == DATE_FORMAT else f"T{f[3]:02d}:{f[4]:02d}:{f[5]:02d}")
        )
    )
    noise = st.text(alphabet="0123456789-:T x/年", max_size=20)
    return st.one_of(text, noise, text.map(lambda t: t.replace("-", "/", 1)), st.just(""))


@given(
    st.sampled_from([DATE_FORMAT, DATETIME_FORMAT]).flatmap(
        lambda fmt: st.tuples(st.just(fmt), st.lists(_near_dates(fmt), max_size=40))
    )
)
@example((DATE_FORMAT, ["2024-02-29", "2026-02-29", "2026-02-30", "0999-01-01", "2026-04-31"]))
@example(
    (DATETIME_FORMAT, ["2026-03-04T23:59:59", "2026-03-04T24:00:00", "２０２６-03-04T00:00:00"])
)
def test_timestamps_agree_with_python(case: tuple[str, list[str]]) -> None:
    fmt, values = case
    good, parsed = checks.timestamps(pa.chunked_array([pa.array(values, pa.string())]), fmt)
    expected = [_expected(v, fmt) for v in values]
    assert list(good) == [e is not None for e in expected]
    # compared as seconds: a bad value may parse to a year Python's datetime cannot hold
    parsed_seconds = parsed.cast(pa.int64()).to_pylist()
    seconds = [s if g else None for s, g in zip(parsed_seconds, good, strict=True)]
    assert seconds == [None if e is None else int((e - _EPOCH).total_seconds()) for e in expected]
