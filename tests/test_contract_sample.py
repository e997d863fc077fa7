"""The repository's copy of the contract's sample sites is the contract's sample, byte for byte."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import CONTRACT_SAMPLE, SAMPLE, SAMPLE_SITES


def _files(root: Path) -> dict[str, bytes]:
    files = (p for p in sorted(root.rglob("*")) if p.is_file())
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_the_copy_holds_both_sample_sites() -> None:
    for site in SAMPLE_SITES:
        assert (SAMPLE / site / "settlements.csv").is_file()
        assert (SAMPLE / site / "lines.csv").is_file()


def test_the_copy_is_the_contract_sample() -> None:
    if not CONTRACT_SAMPLE.is_dir():
        pytest.skip(f"the contract is not beside this checkout ({CONTRACT_SAMPLE})")
    assert _files(SAMPLE) == _files(CONTRACT_SAMPLE)
