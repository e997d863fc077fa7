"""Ingest: counts add up, rejects name row and field, re-ingest is idempotent, a failure half
way leaves the store as it was, and no raw identifier reaches any file of the node home."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.exceptions import InvalidTag

from fedrisk.models.errors import ContractError
from fedrisk.node.home import NodeHome, init_home
from fedrisk.node.ingest import ingest, read_rejects
from fedrisk.node.screen import screen_node
from fedrisk.node.store import BatchRecord, BatchWriter, StoreCounts
from fedrisk.node.vault import Vault
from tests.nodes import counts, operator
from tests.privacy import files_containing, raw_identifiers, store_values_containing


def _counts(home: NodeHome) -> StoreCounts:
    return counts(home)


def _ingest_site(home: NodeHome, folder: Path):  # type: ignore[no-untyped-def]
    return ingest(operator(home, "ingest"), folder / "settlements.csv", folder / "lines.csv")


def test_sample_hospital_counts_add_up_and_rejects_name_the_field(
    sample_dir: Path, hospital_home: NodeHome
) -> None:
    report = _ingest_site(hospital_home, sample_dir / "H33010000")
    for f in report.files:
        assert f.accepted + f.rejected == f.read
    assert {f.file: f.read for f in report.files} == {"settlements": 77, "lines": 157}
    assert report.rejects_path is not None
    rejects = read_rejects(report.rejects_path)
    by_row = {(r.file, r.row): r for r in rejects}
    # S00000144 has birth_date 2026-02-30: rejected, and its fee line follows it.
    assert by_row[("settlements.csv", 22)].field == "birth_date"
    assert by_row[("settlements.csv", 22)].settlement_id == "S00000144"
    assert by_row[("lines.csv", 158)].field == "settlement_id"
    assert len(rejects) == 2
    counts = _counts(hospital_home)
    assert (counts.settlements, counts.lines) == (76, 156)


def test_reingesting_the_same_files_adds_nothing(sample_dir: Path, hospital_home: NodeHome) -> None:
    first = _ingest_site(hospital_home, sample_dir / "H33010000")
    before = _counts(hospital_home)
    second = _ingest_site(hospital_home, sample_dir / "H33010000")
    assert second.already_ingested and second.batch_id == first.batch_id
    assert _counts(hospital_home) == before


def test_overlapping_batch_rejects_what_is_already_stored(
    sample_dir: Path, hospital_home: NodeHome, tmp_path: Path
) -> None:
    site = sample_dir / "H33010000"
    _ingest_site(hospital_home, site)
    before = _counts(hospital_home)
    # The same rows re-exported with a trailing extra column: different bytes, same content.
    export = tmp_path / "reexport"
    export.mkdir()
    for name in ("settlements.csv", "lines.csv"):
        rows = (site / name).read_text(encoding="utf-8").splitlines()
        rows = [rows[0] + ",exported_by"] + [r + ",his" for r in rows[1:]]
        (export / name).write_text("\n".join(rows) + "\n", encoding="utf-8")
    report = _ingest_site(hospital_home, export)
    assert not report.already_ingested
    assert all(f.accepted == 0 and f.rejected == f.read for f in report.files)
    reasons = {r.reason for r in read_rejects(report.rejects_path)}  # type: ignore[arg-type]
    assert "already ingested" in reasons
    after = _counts(hospital_home)
    assert (after.settlements, after.lines) == (before.settlements, before.lines)


def test_failure_inside_the_store_write_leaves_the_store_unchanged(
    sample_dir: Path, hospital_home: NodeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ingest_site(hospital_home, sample_dir / "H33010000")
    before = _counts(hospital_home)
    other = init_home(hospital_home.root.parent / "p", "P33010701")
    real_record = BatchWriter.record

    def record_then_fail(self: BatchWriter, record: BatchRecord) -> None:
        real_record(self, record)  # settlements, lines and the batch row are in…
        raise OSError("disk full")  # …and then the write fails before COMMIT

    monkeypatch.setattr(BatchWriter, "record", record_then_fail)
    with pytest.raises(OSError, match="disk full"):
        _ingest_site(other, sample_dir / "P33010701")
    assert _counts(other) == StoreCounts(0, 0, 0, 0)
    assert _counts(hospital_home) == before
    monkeypatch.undo()
    report = _ingest_site(other, sample_dir / "P33010701")  # a retry then succeeds in full
    assert not report.already_ingested
    assert _counts(other).settlements == 67


def test_killed_ingest_leaves_no_partial_batch(sample_dir: Path, tmp_path: Path) -> None:
    """SIGKILL in the middle of the store transaction, in a real separate process."""
    home = init_home(tmp_path / "node", "P33010701")
    site = sample_dir / "P33010701"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from fedrisk.node.home import open_home
        from fedrisk.node.ingest import ingest
        from fedrisk.node.access import Principal, SiteAccess
        from fedrisk.node.store import BatchWriter
        real = BatchWriter.record
        def record_then_die(self, record):
            real(self, record)
            os.kill(os.getpid(), signal.SIGKILL)
        BatchWriter.record = record_then_die
        site = Path({str(site)!r})
        who = Principal("pytest", "operator")
        access = SiteAccess.open(open_home(Path({str(home.root)!r})), who, "ingest")
        ingest(access, site / "settlements.csv", site / "lines.csv")
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == -9, done.stderr.decode()
    assert _counts(home) == StoreCounts(0, 0, 0, 0)
    report = ingest(operator(home, "ingest"), site / "settlements.csv", site / "lines.csv")
    assert not report.already_ingested
    assert _counts(home).settlements == 67


def test_no_raw_identifier_in_any_file_of_the_node_home(sample_dir: Path, tmp_path: Path) -> None:
    for site_id in ("H33010000", "P33010701"):
        home = init_home(tmp_path / site_id, site_id)
        site = sample_dir / site_id
        _ingest_site(home, site)
        needles = raw_identifiers(site / "settlements.csv")
        assert len(needles) > 50  # the scan looks for something real
        assert files_containing(home.root, needles) == {}
        assert store_values_containing(home.store, needles) == []


def test_vault_holds_the_identifiers_encrypted_and_returns_them(
    sample_dir: Path, hospital_home: NodeHome
) -> None:
    import duckdb

    _ingest_site(hospital_home, sample_dir / "H33010000")
    with duckdb.connect(str(hospital_home.store), read_only=True) as db:
        pseudonym, status = db.execute(
            "SELECT doctor_pseudonym, doctor_status FROM settlements "
            "WHERE settlement_id = 'S00000129'"
        ).fetchone()  # type: ignore[misc]
        patient = db.execute(
            "SELECT patient_pseudonym FROM settlements WHERE settlement_id = 'S00000065'"
        ).fetchone()[0]  # type: ignore[index]
        unknown = db.execute(
            "SELECT doctor_pseudonym, doctor_status FROM settlements "
            "WHERE settlement_id = 'S00000135'"
        ).fetchone()
    assert status == "ok"
    assert unknown == (None, "unknown")
    vault = Vault(hospital_home.vault, hospital_home.secret("vault"))
    assert vault.reveal("doctor", pseudonym) == "D0000004B"
    assert vault.reveal("patient", patient) == "330106198212025792"
    assert vault.reveal("patient", "0" * 32) is None
    wrong_key = Vault(hospital_home.vault, bytes(32))
    with pytest.raises(InvalidTag):
        wrong_key.reveal("doctor", pseudonym)


def test_age_replaces_birth_date(sample_dir: Path, hospital_home: NodeHome) -> None:
    import duckdb

    _ingest_site(hospital_home, sample_dir / "H33010000")
    with duckdb.connect(str(hospital_home.store), read_only=True) as db:
        columns = {r[0] for r in db.execute("DESCRIBE settlements").fetchall()}
        # born 1969-08-28, admitted 2026-03-25: 56 completed years
        age = db.execute("SELECT age FROM settlements WHERE settlement_id='S00000129'").fetchone()
    assert "birth_date" not in columns and "patient_name" not in columns
    assert age == (56,)


def test_rejects_file_is_json_lines_without_identifiers(
    sample_dir: Path, hospital_home: NodeHome
) -> None:
    report = _ingest_site(hospital_home, sample_dir / "H33010000")
    assert report.rejects_path is not None
    for line in report.rejects_path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        assert set(record) == {"file", "row", "settlement_id", "field", "reason", "other_fields"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fedrisk.synth import generate_dataset

    out = tmp_path_factory.mktemp("generated")
    generate_dataset(out, sites=3, settlements=1500, seed=11)
    return out


def _manifest(site: Path) -> set[tuple[str, int, str]]:
    with (site / "malformed.csv").open(encoding="utf-8", newline="") as handle:
        return {(r["file"], int(r["row"]), r["field"]) for r in csv.DictReader(handle)}


def test_generated_sites_reject_exactly_the_malformed_rows_and_leak_nothing(  # and screen
    generated: Path, tmp_path: Path
) -> None:
    sites = sorted(p for p in generated.iterdir() if p.is_dir())
    assert len(sites) == 3
    for site in sites:
        home = init_home(tmp_path / site.name, site.name)
        report = ingest(
            operator(home, "ingest"),
            site / "settlements.csv",
            site / "lines.csv",
            site / "labels.csv",
        )
        assert all(f.accepted + f.rejected == f.read for f in report.files)
        assert report.rejects_path is not None
        rejected = {(r.file, r.row, r.field) for r in read_rejects(report.rejects_path)}
        assert rejected == _manifest(site)
        flags = screen_node(operator(home, "screening"), home.root / "flags.jsonl")
        assert flags.flags > 10  # the flags file is scanned too
        needles = raw_identifiers(site / "settlements.csv")
        assert len(needles) > 500  # the scan looks for something real
        assert files_containing(home.root, needles) == {}
        assert store_values_containing(home.store, needles) == []


@pytest.mark.parametrize("damage", ["patient_id first, short row", "unbalanced quote"])
def test_broken_exports_never_put_identifiers_into_rejects(
    sample_dir: Path, hospital_home: NodeHome, tmp_path: Path, damage: str
) -> None:
    site = sample_dir / "H33010000"
    with (site / "settlements.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if damage == "patient_id first, short row":
        at = rows[0].index("patient_id")
        rows = [[r[at], *r[:at], *r[at + 1 :]] for r in rows]
        rows[5] = rows[5][:-2]  # wrong field count; its first field is a national ID
    else:
        rows[5][5] = '"' + rows[5][5]  # a quote that never closes swallows the rest
    text = "\n".join(",".join(r) for r in rows) + "\n"
    if damage == "unbalanced quote":
        text = text.replace('""', '"')
    broken = tmp_path / "settlements.csv"
    broken.write_text(text, encoding="utf-8")
    if damage == "unbalanced quote":
        with pytest.raises(ContractError, match="line 6 opens a quote that is never closed"):
            ingest(operator(hospital_home, "ingest"), broken, site / "lines.csv")
        assert list(hospital_home.rejects.iterdir()) == []
        return
    report = ingest(operator(hospital_home, "ingest"), broken, site / "lines.csv")
    assert report.rejects_path is not None
    assert files_containing(hospital_home.root, raw_identifiers(site / "settlements.csv")) == {}
    assert any(r.field == "row" for r in read_rejects(report.rejects_path))
