"""Shared fixtures: the contract's sample sites and small node homes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fedrisk.node.home import NodeHome, init_home

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO.parent / "shared" / "contract" / "sample"
SAMPLE_SITES = ("H33010000", "P33010701")


@pytest.fixture
def sample_dir(tmp_path: Path) -> Path:
    """A copy of the contract's sample sites (one folder per site)."""
    if not SAMPLE.is_dir():
        pytest.skip(f"contract sample not found at {SAMPLE}")
    target = tmp_path / "sample"
    shutil.copytree(SAMPLE, target)
    return target


@pytest.fixture
def hospital_home(tmp_path: Path) -> NodeHome:
    return init_home(tmp_path / "node-H33010000", "H33010000")
