"""The synthetic generator's truth file, checked against the independent oracle.

``fedrisk.synth.generate_dataset`` writes ``out/<site_id>/{settlements,lines,labels,malformed}.csv``
and ``out/truth.csv`` (one row per settlement involved in an injected incident). The truth must be
exactly what the rules of docs/rules.md flag, as evaluated row by row by tests/oracle.py, which
shares no code with the generator.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from fedrisk.models.kb import load_kb
from fedrisk.models.schema import (
    LABEL_COLUMNS,
    LINE_COLUMNS,
    RULE_IDS,
    SETTLEMENT_COLUMNS,
    TRUTH_COLUMNS,
)
from fedrisk.synth import generate_dataset
from tests.oracle import MALFORMED_COLUMNS, Flag, evaluate, read_rows, site_dirs

KB = load_kb()
SITE_FILES = {
    "settlements.csv": SETTLEMENT_COLUMNS,
    "lines.csv": LINE_COLUMNS,
    "labels.csv": LABEL_COLUMNS,
    "malformed.csv": MALFORMED_COLUMNS,
}
EXAMPLES = 5

# (seed, sites, settlements per site)
CASES = [(1, 3, 2000), (2, 3, 2000), (3, 3, 2000), (4, 4, 2000)]
FOUR_SITES = CASES[-1]


def _case_id(case: tuple[int, int, int]) -> str:
    seed, sites, settlements = case
    return f"seed{seed}-{sites}x{settlements}"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, int, int], Path]:
    """Each case generated once for the whole module."""
    out: dict[tuple[int, int, int], Path] = {}
    for case in CASES:
        seed, sites, settlements = case
        folder = tmp_path_factory.mktemp(_case_id(case)) / "out"
        generate_dataset(folder, sites=sites, settlements=settlements, seed=seed)
        out[case] = folder
    return out


def truth_rows(data_dir: Path) -> list[dict[str, str]]:
    """The rows of truth.csv."""
    return [row for _, row in read_rows(data_dir / "truth.csv")]


def truth_set(data_dir: Path) -> set[Flag]:
    """truth.csv as (rule_id, site_id, settlement_id)."""
    return {(r["rule_id"], r["site_id"], r["settlement_id"]) for r in truth_rows(data_dir)}


def diff_report(truth: set[Flag], oracle: set[Flag], incidents: dict[Flag, list[str]]) -> str:
    """A readable per-rule difference between the truth file and the oracle."""
    missing: dict[str, list[Flag]] = defaultdict(list)  # in truth, not flagged by the oracle
    extra: dict[str, list[Flag]] = defaultdict(list)  # flagged by the oracle, not in truth
    for flag in truth - oracle:
        missing[flag[0]].append(flag)
    for flag in oracle - truth:
        extra[flag[0]].append(flag)
    lines = []
    for rule in sorted(set(missing) | set(extra)):
        lines.append(f"{rule}: {len(missing[rule])} in truth only, {len(extra[rule])} oracle only")
        for _, site, sid in sorted(missing[rule])[:EXAMPLES]:
            names = ",".join(incidents.get((rule, site, sid), []))
            lines.append(f"    truth only:  {site}/{sid} (incident {names})")
        for _, site, sid in sorted(extra[rule])[:EXAMPLES]:
            lines.append(f"    oracle only: {site}/{sid}")
    return "\n".join(lines)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_oracle_equals_truth(
    case: tuple[int, int, int], datasets: dict[tuple[int, int, int], Path]
) -> None:
    data_dir = datasets[case]
    truth = truth_set(data_dir)
    oracle = evaluate(data_dir, KB)
    incidents: dict[Flag, list[str]] = defaultdict(list)
    for r in truth_rows(data_dir):
        incidents[(r["rule_id"], r["site_id"], r["settlement_id"])].append(r["incident_id"])
    assert oracle == truth, "oracle and truth.csv differ:\n" + diff_report(truth, oracle, incidents)


def test_every_rule_has_truth_in_four_site_run(
    datasets: dict[tuple[int, int, int], Path],
) -> None:
    rules = {rule for rule, _, _ in truth_set(datasets[FOUR_SITES])}
    absent = [rule for rule in RULE_IDS if rule not in rules]
    assert not absent, f"rules with no truth row in the 4-site run: {absent}"


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_generation_is_deterministic(
    tmp_path: Path, datasets: dict[tuple[int, int, int], Path]
) -> None:
    seed, sites, settlements = CASES[0]
    again = tmp_path / "out"
    generate_dataset(again, sites=sites, settlements=settlements, seed=seed)
    first, second = _tree(datasets[CASES[0]]), _tree(again)
    assert sorted(first) == sorted(second)
    differing = [name for name in sorted(first) if first[name] != second[name]]
    assert not differing, f"files that differ between two runs of seed {seed}: {differing}"


def _header(path: Path) -> tuple[str, ...]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return tuple(next(csv.reader(handle)))


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_headers_are_the_contract_columns(
    case: tuple[int, int, int], datasets: dict[tuple[int, int, int], Path]
) -> None:
    data_dir = datasets[case]
    assert _header(data_dir / "truth.csv") == TRUTH_COLUMNS
    folders = site_dirs(data_dir)
    assert len(folders) == case[1]
    for folder in folders:
        for name, columns in SITE_FILES.items():
            assert _header(folder / name) == columns, f"{folder.name}/{name}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_confirmed_labels_are_in_truth(
    case: tuple[int, int, int], datasets: dict[tuple[int, int, int], Path]
) -> None:
    data_dir = datasets[case]
    truth = truth_set(data_dir)
    absent = []
    for folder in site_dirs(data_dir):
        malformed = [r for _, r in read_rows(folder / "malformed.csv")]
        rejected = {int(r["row"]) for r in malformed if r["file"] == "labels.csv"}
        for number, row in read_rows(folder / "labels.csv"):
            if number in rejected or row["label"] != "1" or row["violation_type"] not in RULE_IDS:
                continue
            flag = (row["violation_type"], folder.name, row["settlement_id"])
            if flag not in truth:
                absent.append(flag)
    assert not absent, f"{len(absent)} label-1 rows not in truth, e.g. {absent[:EXAMPLES]}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_truth_names_existing_settlements(
    case: tuple[int, int, int], datasets: dict[tuple[int, int, int], Path]
) -> None:
    data_dir = datasets[case]
    known = {
        (folder.name, row["settlement_id"])
        for folder in site_dirs(data_dir)
        for _, row in read_rows(folder / "settlements.csv")
    }
    unknown = [r for r in truth_rows(data_dir) if (r["site_id"], r["settlement_id"]) not in known]
    assert not unknown, f"{len(unknown)} truth rows name no settlement, e.g. {unknown[:EXAMPLES]}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_malformed_rows_name_their_own_row(
    case: tuple[int, int, int], datasets: dict[tuple[int, int, int], Path]
) -> None:
    """Each malformed.csv row points at an existing row whose settlement_id it repeats."""
    data_dir = datasets[case]
    wrong = []
    for folder in site_dirs(data_dir):
        ids = {
            name: {n: row.get("settlement_id", "") for n, row in read_rows(folder / name)}
            for name in ("settlements.csv", "lines.csv", "labels.csv")
        }
        for _, bad in read_rows(folder / "malformed.csv"):
            actual = ids.get(bad["file"], {}).get(int(bad["row"]))
            if actual != bad["settlement_id"]:
                wrong.append((folder.name, bad, actual))
    assert not wrong, f"{len(wrong)} malformed rows do not match, e.g. {wrong[:EXAMPLES]}"
