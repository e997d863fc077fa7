"""Shared fixtures: the contract's sample sites, small node homes, one demo run."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fedrisk.cli.main import app
from fedrisk.node.home import NodeHome, init_home

REPO = Path(__file__).resolve().parent.parent
# A copy of the contract's sample sites, so that a clone anywhere runs every test;
# tests/test_contract_sample.py checks it against the contract when the contract is beside us.
SAMPLE = REPO / "tests" / "data" / "contract-sample"
CONTRACT_SAMPLE = REPO.parent / "shared" / "contract" / "sample"
SAMPLE_SITES = ("H33010000", "P33010701")


@pytest.fixture
def sample_dir(tmp_path: Path) -> Path:
    """A copy of the contract's sample sites (one folder per site)."""
    target = tmp_path / "sample"
    shutil.copytree(SAMPLE, target)
    return target


@pytest.fixture
def hospital_home(tmp_path: Path) -> NodeHome:
    return init_home(tmp_path / "node-H33010000", "H33010000")


# The demo as the tests run it (docs/privacy.md's example starts with the same command).
DEMO_ARGS = ("demo", "--sites", "3", "--settlements", "1500", "--rounds", "1")


@dataclass(frozen=True)
class DemoRun:
    root: Path  # the folder it ran from
    workdir: Path  # relative to root, as the README's demo uses it
    exit_code: int
    output: str


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    """One ``fedrisk demo`` (generate, ingest, train and match over local Flower federations,
    screen) for every test that reads what it leaves; it takes a minute and a half."""
    root = tmp_path_factory.mktemp("demo")
    before = os.getcwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(app, [*DEMO_ARGS, "--workdir", "w"])
    finally:
        os.chdir(before)
    return DemoRun(root, Path("w"), result.exit_code, result.output)
