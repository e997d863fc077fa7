"""The audit log is tamper-evident: `audit verify` names the first bad entry of any change."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC
from functools import cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fedrisk.cli.main import app
from fedrisk.crypto.canonical import canonical_json
from fedrisk.crypto.identity import Identity
from fedrisk.crypto.treehead import sign_tree_head
from fedrisk.node.auditlog import (
    HEADS_FILE,
    LOG_FILE,
    AuditLog,
    AuditRecord,
    Durability,
    entry_line,
    read_entries,
)
from fedrisk.node.auditverify import verify_log
from fedrisk.node.home import init_home

KEY = Identity.generate("H1")
COMMITS = (1, 4, 2, 5, 1, 3, 6, 2, 1, 3)  # entries per commit
PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _record(i: int) -> AuditRecord:
    return AuditRecord(
        actor=f"user{i % 3}",
        role="operator" if i % 4 else "auditor",
        purpose=("ingest", "screening", "audit")[i % 3],
        action="read" if i % 5 else "write",
        dataset=("settlements", "lines", "audit")[i % 3],
        fields=("site_id", "settlement_id")[: 1 + i % 2],
        rows=i * 7,
        decision="denied" if i % 7 == 3 else "allowed",
        reason="" if i % 7 != 3 else "operator/audit may not read lines",
        policy="fbfb38d2a315e715",
    )


@cache
def _pristine() -> Path:
    folder = Path(tempfile.mkdtemp(prefix="fedrisk-audit-")) / "audit"
    log = AuditLog.create(folder, "H1", KEY, Durability.FLUSH)
    i = 0
    for size in COMMITS:
        log.append([_record(i + k) for k in range(size)])
        i += size
    return folder


@contextmanager
def _copy() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as scratch:
        target = Path(scratch) / "audit"
        shutil.copytree(_pristine(), target)
        yield target


def _lines(folder: Path) -> list[bytes]:
    return (folder / LOG_FILE).read_bytes().splitlines(keepends=True)


def _first_bad(folder: Path) -> int | None:
    report = verify_log(folder, KEY.public)
    assert not report.intact, "tampering went unnoticed"
    assert report.problem is not None
    return report.problem.entry


ENTRIES = sum(COMMITS)
LOG_BYTES = len((_pristine() / LOG_FILE).read_bytes())


def test_pristine_log_verifies() -> None:
    report = verify_log(_pristine(), KEY.public)
    assert report.intact, report.problem
    assert report.entries == ENTRIES and report.heads == len(COMMITS) + 1


@PROPERTY
@given(st.integers(0, LOG_BYTES - 1), st.integers(1, 255))
def test_any_flipped_byte_is_found_at_its_entry(position: int, mask: int) -> None:
    with _copy() as folder:
        data = bytearray((folder / LOG_FILE).read_bytes())
        entry = data[:position].count(b"\n")
        data[position] ^= mask
        (folder / LOG_FILE).write_bytes(bytes(data))
        assert _first_bad(folder) == entry


@PROPERTY
@given(st.integers(0, ENTRIES - 1))
def test_a_deleted_entry_is_found(index: int) -> None:
    with _copy() as folder:
        lines = _lines(folder)
        del lines[index]
        (folder / LOG_FILE).write_bytes(b"".join(lines))
        assert _first_bad(folder) == index


@PROPERTY
@given(st.lists(st.integers(0, ENTRIES - 1), min_size=2, max_size=2, unique=True))
def test_two_reordered_entries_are_found(pair: list[int]) -> None:
    i, j = sorted(pair)
    with _copy() as folder:
        lines = _lines(folder)
        lines[i], lines[j] = lines[j], lines[i]
        (folder / LOG_FILE).write_bytes(b"".join(lines))
        assert _first_bad(folder) == i


@PROPERTY
@given(st.integers(0, LOG_BYTES - 1))
def test_a_truncated_log_is_found(length: int) -> None:
    with _copy() as folder:
        data = (folder / LOG_FILE).read_bytes()
        (folder / LOG_FILE).write_bytes(data[:length])
        assert _first_bad(folder) == data[:length].count(b"\n")


REPLACEMENTS = ("other node's head", "forged signature", "changed root", "earlier head", "swap")


@PROPERTY
@given(st.integers(1, len(COMMITS)), st.sampled_from(REPLACEMENTS))
def test_a_replaced_signed_head_is_found(k: int, how: str) -> None:
    with _copy() as folder:
        heads = (folder / HEADS_FILE).read_bytes().splitlines(keepends=True)
        head = json.loads(heads[k])
        if how == "other node's head":
            other = sign_tree_head(Identity.generate("H1"), head["size"], bytes(32), head["time"])
            head = other.to_json()
        elif how == "forged signature":
            head["signature"] = json.loads(heads[k - 1])["signature"]
        elif how == "changed root":
            head["root"] = "00" * 32
        elif how == "earlier head":
            head = json.loads(heads[k - 1])
        else:
            heads[k - 1], heads[k] = heads[k], heads[k - 1]
        if how != "swap":
            heads[k] = (json.dumps(head) + "\n").encode()
        (folder / HEADS_FILE).write_bytes(b"".join(heads))
        report = verify_log(folder, KEY.public)
        assert not report.intact
        assert report.problem is not None and report.problem.head in (k - 1, k)


def test_a_log_cut_back_with_its_heads_is_found_against_a_kept_head(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    log = AuditLog.create(folder, "H1", KEY, Durability.FLUSH)
    log.append([_record(0), _record(1)])
    kept = log.append([_record(2)])
    log.append([_record(3)])
    assert verify_log(folder, KEY.public, against=kept).intact
    # cut back the log and its heads file together, to before the kept head, and go on
    lines = _lines(folder)
    heads = (folder / HEADS_FILE).read_bytes().splitlines(keepends=True)
    (folder / LOG_FILE).write_bytes(b"".join(lines[:2]))
    (folder / HEADS_FILE).write_bytes(b"".join(heads[:2]))
    (folder / "state.json").unlink()
    assert verify_log(folder, KEY.public).intact  # alone, the cut is invisible …
    report = verify_log(folder, KEY.public, against=kept)  # … but not against a kept head
    assert not report.intact and report.problem is not None
    assert "cut back" in report.problem.message


def test_appending_resumes_after_the_state_cache_is_lost(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    log = AuditLog.create(folder, "H1", KEY)
    log.append([_record(0), _record(1)])
    (folder / "state.json").unlink()
    log.append([_record(2)])
    assert verify_log(folder, KEY.public).intact


def test_appending_refuses_a_log_that_contradicts_its_head(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    log = AuditLog.create(folder, "H1", KEY)
    log.append([_record(0), _record(1)])
    data = (folder / LOG_FILE).read_bytes().replace(b'"rows":0', b'"rows":9')
    (folder / LOG_FILE).write_bytes(data)
    (folder / "state.json").unlink()
    with pytest.raises(Exception, match="does not match its last signed head"):
        log.append([_record(2)])


def test_a_writer_that_stays_open_sees_commits_of_other_writers(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    log = AuditLog.create(folder, "H1", KEY)
    with log.writer() as service:  # a service's queue, open for its whole life
        service.append([_record(0), _record(1)])
        log.append([_record(2)])  # e.g. a command run beside the service
        (folder / "state.json").unlink()
        AuditLog(folder, "H1", KEY).append([_record(3)])  # rebuilds the lost cache
        head = service.append([_record(4)])
    assert head.size == 5
    report = verify_log(folder, KEY.public)
    assert report.intact, report.problem
    assert [e["rows"] for e in read_entries(folder)] == [0, 7, 14, 21, 28]


def test_a_writer_reads_the_files_again_after_a_failed_commit(tmp_path: Path) -> None:
    folder = tmp_path / "audit"
    log = AuditLog.create(folder, "H1", KEY, Durability.FLUSH)
    with log.writer() as writer:
        writer.append([_record(0)])
        with pytest.raises(AttributeError):  # after the first record changed the edge
            writer.append([_record(1), "not a record"])  # type: ignore[list-item]
        writer.append([_record(2)])
    report = verify_log(folder, KEY.public)
    assert report.intact, report.problem
    assert [e["rows"] for e in read_entries(folder)] == [0, 14]


_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_HOSTILE = st.sampled_from(["\x00fedrisk-seq\x00", "\x00fedrisk-prev\x00", "\x00fedrisk-time\x00"])


@PROPERTY
@given(
    st.builds(
        AuditRecord,
        actor=_TEXT | _HOSTILE,
        role=_TEXT,
        purpose=_TEXT,
        action=st.sampled_from(["read", "write"]),
        dataset=_TEXT,
        fields=st.lists(_TEXT | _HOSTILE, max_size=3).map(tuple),
        rows=st.none() | st.integers(0, 10**9),
        decision=st.sampled_from(["allowed", "denied"]),
        reason=_TEXT | _HOSTILE,
        policy=_TEXT,
    ),
    st.integers(0, 2**40),
    st.binary(min_size=32, max_size=32).map(bytes.hex),
    st.datetimes(timezones=st.just(UTC)).map(lambda t: t.isoformat(timespec="microseconds")),
)
def test_an_entry_from_its_template_is_its_canonical_json(
    record: AuditRecord, seq: int, prev: str, time: str
) -> None:
    expected = canonical_json(record.entry(seq, prev, time, "H1"))
    assert entry_line(record, seq, prev, time, "H1") == expected


runner = CliRunner()


@pytest.mark.parametrize("damage", ["flip", "delete", "swap", "truncate", "head"])
def test_audit_verify_command_exits_1_and_names_the_entry(tmp_path: Path, damage: str) -> None:
    home = init_home(tmp_path / "node", "H1")
    log = AuditLog(home.audit, "H1", home.identity())
    for i in range(6):
        log.append([_record(i)])
    ok = runner.invoke(app, ["audit", "verify", "--home", str(home.root)])
    assert ok.exit_code == 0 and "intact" in ok.output, ok.output
    lines = _lines(home.audit)
    if damage == "flip":
        lines[3] = lines[3].replace(b'"rows":21', b'"rows":12')
    elif damage == "delete":
        del lines[3]
    elif damage == "swap":
        lines[3], lines[4] = lines[4], lines[3]
    elif damage == "truncate":
        lines = lines[:3]
    (home.audit / LOG_FILE).write_bytes(b"".join(lines))
    if damage == "head":
        heads = (home.audit / HEADS_FILE).read_bytes().splitlines(keepends=True)
        heads[4] = heads[4].replace(b'"size":4', b'"size":5')
        (home.audit / HEADS_FILE).write_bytes(b"".join(heads))
    result = runner.invoke(app, ["audit", "verify", "--home", str(home.root)])
    assert result.exit_code == 1, result.output
    assert "NOT INTACT" in result.output
    if damage != "head":
        assert "first bad entry: 3" in result.output, result.output
    else:
        assert "signed head 4" in result.output, result.output
