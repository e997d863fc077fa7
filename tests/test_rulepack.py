"""Rule packs: the shipped pack, parameters that change results, packs that are refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedrisk.models.errors import RulePackError
from fedrisk.models.rules.catalogue import CATALOGUE
from fedrisk.models.rules.pack import DEFAULT_PACK, load_rule_pack, parse_rule_pack
from tests.screening import ingest_sites, screen_all
from tests.test_oracle_rules import SEMAGLUTIDE, at, ln, make, patient, st

DEFAULT_TEXT = (Path(__file__).parent.parent / "models" / "rules" / DEFAULT_PACK).read_text()


def edited(old: str, new: str, text: str = DEFAULT_TEXT) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def write_pack(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "pack.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_pack_lists_every_rule_with_the_documented_defaults() -> None:
    pack = load_rule_pack()
    assert set(pack.rules) == {spec.rule_id for spec in CATALOGUE}
    batch = pack.rules["batch_prescribing"]
    assert (batch.integer("min_patients"), batch.integer("window_seconds")) == (3, 60)
    assert pack.rules["monthly_pharmacy_spend"].number("limit") == 8000
    assert pack.rules["interaction"].severity is None  # taken from the knowledge base


def test_version_follows_meaning_not_layout() -> None:
    base = parse_rule_pack(DEFAULT_TEXT, "a")
    relaid = parse_rule_pack("# a comment\n" + DEFAULT_TEXT.replace(" = ", "="), "b")
    changed = parse_rule_pack(edited("window_seconds = 60", "window_seconds = 61"), "c")
    assert base.version == relaid.version != changed.version


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("[rules.data_quality]", "[rules.data_qualty]", "rule 'data_qualty': not a rule id"),
        ("window_seconds = 60", "windw_seconds = 60", "rule 'batch_prescribing': unknown field"),
        ("window_seconds = 60", 'window_seconds = "60"', "field 'window_seconds': '60' is not"),
        ("window_seconds = 60", "window_seconds = -1", "field 'window_seconds': -1 is below"),
        ("min_patients = 3", "min_patients = 1", "field 'min_patients': 1 is below"),
        ("min_patients = 3\n", "", "field 'min_patients': missing"),
        ('limit = "8000.00"', "limit = 8000.5", "field 'limit': 8000.5 is not"),
        ('limit = "8000.00"', 'limit = "lots"', "field 'limit': 'lots' is not"),
        ('severity = "block"', 'severity = "high"', "field 'severity' must be one of"),
        ("[rules.interaction]\n", '[rules.interaction]\nseverity = "warn"\n', "knowledge base"),
        ("enabled = true", 'enabled = "yes"', "field 'enabled' must be true or false"),
        ('name = "fedrisk-default"', "name = [", "not valid TOML"),
        ('name = "fedrisk-default"', 'name = "x"\nversion = 2', "unknown top-level field"),
    ],
)
def test_malformed_pack_is_refused_naming_rule_and_field(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    path = write_pack(tmp_path, edited(old, new))
    with pytest.raises(RulePackError, match=message.replace("(", r"\(")) as error:
        load_rule_pack(path)
    assert str(path) in str(error.value)


def test_a_pack_missing_a_rule_is_refused(tmp_path: Path) -> None:
    start = DEFAULT_TEXT.index("[rules.split_admission]")
    end = DEFAULT_TEXT.index("[rules.prescriber_outlier]")
    path = write_pack(tmp_path, DEFAULT_TEXT[:start] + DEFAULT_TEXT[end:])
    with pytest.raises(RulePackError, match="rule 'split_admission': missing"):
        load_rule_pack(path)


def test_unreadable_pack_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulePackError, match="cannot read rule pack"):
        load_rule_pack(tmp_path / "nope.toml")


def _batch_data(root: Path) -> Path:
    """Three patients of one doctor, one monitored drug, ordered at 0, 30 and 100 s."""
    t0 = "2026-03-02T10:00:00"
    settlements, lines = [], []
    for i, offset in enumerate([0, 30, 100]):
        settlements.append(st(f"B{i}", patient_id=patient(50 + i), doctor_id="D9"))
        lines.append(ln(f"B{i}", SEMAGLUTIDE, order_time=at(t0, seconds=offset)))
    return make(root / "data", settlements, lines)


def test_changed_parameters_change_the_result(tmp_path: Path) -> None:
    homes = ingest_sites(_batch_data(tmp_path), tmp_path / "homes")

    def batch_flags(text: str) -> set[str]:
        flags, _ = screen_all(homes, parse_rule_pack(text, "test"))
        return {sid for rule, _, sid in flags if rule == "batch_prescribing"}

    assert batch_flags(DEFAULT_TEXT) == set()  # 100 s > 60 s
    assert batch_flags(edited("window_seconds = 60", "window_seconds = 100")) == {"B0", "B1", "B2"}
    assert batch_flags(edited("window_seconds = 60", "window_seconds = 99")) == set()
    assert batch_flags(edited("min_patients = 3", "min_patients = 2")) == {
        "B0",
        "B1",
    }  # B2 is 70 s after B1


def test_disabled_rule_and_severity_come_from_the_pack(tmp_path: Path) -> None:
    data = make(tmp_path / "data", [st("M", gender="M")], [ln("M", "S331302001")])
    homes = ingest_sites(data, tmp_path / "homes")
    start = DEFAULT_TEXT.index("[rules.gender_conflict]")
    warn = DEFAULT_TEXT[:start] + edited(
        'severity = "block"', 'severity = "warn"', DEFAULT_TEXT[start:]
    )
    flags, reports = screen_all(homes, parse_rule_pack(warn, "warn"))
    assert ("gender_conflict", "H1", "M") in flags
    assert '"severity":"warn"' in reports["H1"].out.read_text(encoding="utf-8")
    off = DEFAULT_TEXT[:start] + edited("enabled = true", "enabled = false", DEFAULT_TEXT[start:])
    flags, reports = screen_all(homes, parse_rule_pack(off, "off"))
    assert not any(rule == "gender_conflict" for rule, _, _ in flags)
    assert "gender_conflict" not in reports["H1"].counts
