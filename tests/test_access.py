"""The access policy is enforced before every read, and every attempt is in the audit log."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import duckdb
import pytest

from fedrisk.node.access import AccessDeniedError, Principal, SiteAccess
from fedrisk.node.auditlog import read_entries
from fedrisk.node.auditverify import verify_log
from fedrisk.node.home import NodeHome
from fedrisk.node.policy import PolicyError, default_policy_text, parse_policy
from fedrisk.node.screen import screen_node
from tests.nodes import operator

REPO = Path(__file__).resolve().parent.parent


def _entries(home: NodeHome) -> list[dict[str, object]]:
    return list(read_entries(home.audit))


def test_a_read_outside_the_policy_is_refused_before_reading_and_logged(
    hospital_home: NodeHome,
) -> None:
    access = operator(hospital_home, "screening")
    called = []
    with pytest.raises(AccessDeniedError, match=r"may not read lines\.item_name"):
        access.read("lines", ["item_code", "item_name"], lambda: called.append(1))
    assert called == []  # refused before the read
    last = _entries(hospital_home)[-1]
    assert last["decision"] == "denied"
    assert last["dataset"] == "lines" and last["fields"] == ["item_code", "item_name"]
    assert last["actor"] == "pytest" and last["purpose"] == "screening"
    assert "may not read lines.item_name" in str(last["reason"])
    assert verify_log(hospital_home.audit, hospital_home.public_identity()).intact


@pytest.mark.parametrize(
    ("role", "purpose", "dataset", "reason"),
    [
        ("intruder", "screening", "settlements", "role 'intruder' is not in the policy"),
        ("operator", "marketing", "settlements", "has no grant for purpose 'marketing'"),
        ("operator", "screening", "vault", "may not read vault"),
        ("auditor", "audit", "settlements", "may not read settlements"),
    ],
)
def test_denials_name_what_was_refused(
    hospital_home: NodeHome, role: str, purpose: str, dataset: str, reason: str
) -> None:
    access = SiteAccess.open(hospital_home, Principal("mallory", role), purpose)
    with pytest.raises(AccessDeniedError, match=reason):
        access.read(dataset, ["settlement_id"] if dataset != "vault" else ["*"], list)
    last = _entries(hospital_home)[-1]
    assert (last["actor"], last["role"], last["decision"]) == ("mallory", role, "denied")


def test_allowed_reads_are_logged_with_their_row_count(hospital_home: NodeHome) -> None:
    access = operator(hospital_home, "status")
    assert access.read("settlements", [], lambda: [1, 2, 3]) == [1, 2, 3]
    last = _entries(hospital_home)[-1]
    assert (last["decision"], last["rows"], last["fields"]) == ("allowed", 3, [])


def test_screening_is_refused_when_the_policy_withdraws_a_field(
    sample_dir: Path, hospital_home: NodeHome, tmp_path: Path
) -> None:
    from fedrisk.node.ingest import ingest

    site = sample_dir / "H33010000"
    ingest(operator(hospital_home, "ingest"), site / "settlements.csv", site / "lines.csv")
    policy = hospital_home.policy_file.read_text(encoding="utf-8")
    hospital_home.policy_file.write_text(
        policy.replace('"doctor_pseudonym", "doctor_status",', '"doctor_status",'),
        encoding="utf-8",
    )
    out = tmp_path / "flags.jsonl"
    with pytest.raises(AccessDeniedError, match=r"settlements\.doctor_pseudonym"):
        screen_node(operator(hospital_home, "screening"), out)
    assert not out.exists()
    denied = [e for e in _entries(hospital_home) if e["decision"] == "denied"]
    assert len(denied) == 1 and denied[0]["dataset"] == "settlements"


def test_ingest_and_screening_are_logged_dataset_by_dataset(
    sample_dir: Path, hospital_home: NodeHome, tmp_path: Path
) -> None:
    from fedrisk.node.ingest import ingest

    site = sample_dir / "H33010000"
    ingest(operator(hospital_home, "ingest"), site / "settlements.csv", site / "lines.csv")
    screen_node(operator(hospital_home, "screening"), tmp_path / "flags.jsonl")
    seen = {(e["purpose"], e["action"], e["dataset"]) for e in _entries(hospital_home)}
    assert {
        ("ingest", "read", "export.settlements"),
        ("ingest", "read", "export.lines"),
        ("ingest", "write", "settlements"),
        ("ingest", "write", "lines"),
        ("ingest", "write", "vault"),
        ("screening", "read", "settlements"),
        ("screening", "read", "lines"),
        ("screening", "read", "rejects"),
        ("screening", "write", "flags"),
    } <= seen
    screening_lines = next(
        e for e in _entries(hospital_home) if (e["purpose"], e["dataset"]) == ("screening", "lines")
    )
    assert "amount" not in screening_lines["fields"]  # type: ignore[operator]
    assert screening_lines["rows"] == 156


def test_attached_store_exposes_only_the_declared_fields(hospital_home: NodeHome) -> None:
    db = duckdb.connect()
    operator(hospital_home, "screening").attach_store(db, {"lines": ["item_code", "quantity"]})
    assert db.execute("SELECT count(*) FROM lines").fetchone() == (0,)
    with pytest.raises(duckdb.BinderException):
        db.execute("SELECT amount FROM lines")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (('lines = [\n  "site_id"', 'lnes = [\n  "site_id"'), "unknown dataset 'lnes'"),
        (('"quantity",\n  "days', '"quantiy",\n  "days'), "lines has no field"),
        (('format = "fedrisk-policy-v1"', 'format = "v0"'), "format must be"),
        (('about = "validate', 'abuot = "validate'), "unknown key"),
        (('batches = ["batch_id"]', 'batches = "batch_id"'), "must be a list"),
    ],
)
def test_a_policy_with_a_typo_is_refused_as_a_whole(change: tuple[str, str], message: str) -> None:
    text = default_policy_text()
    assert change[0] in text
    with pytest.raises(PolicyError, match=message):
        parse_policy(text.replace(*change, 1), "policy.toml")


def test_policy_version_follows_meaning_not_layout() -> None:
    text = default_policy_text()
    assert parse_policy(text, "a").version == parse_policy("# note\n" + text, "b").version
    narrower = text.replace('batches = ["batch_id"]\n', "", 1)
    assert parse_policy(narrower, "c").version != parse_policy(text, "a").version


# --- the choke point, checked in the source -----------------------------------------------

# Functions that read site data. Outside the modules that define them, a reference to one
# must sit inside the arguments of a SiteAccess call (read / write / attach_store), directly
# or through a helper that is itself only used there.
READERS = {
    "read_contract_csv",
    "read_rejects",
    "settlement_ids",
    "labelled_ids",
    "line_keys",
    "has_content",
    "count_rows",
    "reveal",
    "read_entries",
    "entry_lines",
}
GATES = {"read", "write", "attach_store"}
SOURCES = [REPO / d for d in ("node", "models", "crypto", "coordinator", "fedrisk/cli")]


def _inside_gate(path: list[ast.AST]) -> bool:
    """Whether the last node of ``path`` (root first) is within a gate call's arguments."""
    for node, child in itertools.pairwise(path):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in GATES
            and child is not node.func
        ):
            return True
    return False


def _references(tree: ast.AST, names: set[str]) -> list[tuple[str, int, bool, str | None]]:
    """(name, line, inside a gate call, enclosing top-level function) of each reference."""
    found = []

    def walk(node: ast.AST, parents: list[ast.AST], function: str | None) -> None:
        name = node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", None)
        if name in names and isinstance(node, ast.Name | ast.Attribute):
            found.append((name, node.lineno, _inside_gate([*parents, node]), function))
        for child in ast.iter_child_nodes(node):
            top = function
            if function is None and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                top = child.name
            walk(child, [*parents, node], top)

    walk(tree, [], None)
    return found


def test_site_data_is_read_only_through_the_access_gate() -> None:
    trees = {
        path: ast.parse(path.read_text(encoding="utf-8"))
        for folder in SOURCES
        for path in sorted(folder.rglob("*.py"))
    }
    defined = {
        path: {
            n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name in READERS
        }
        for path, tree in trees.items()
    }
    guarded = set(READERS)
    offenders: list[str] = []
    for _ in range(5):  # helpers that call readers are guarded too (to a fixed point)
        offenders = []
        for path, tree in trees.items():
            for name, line, gated, function in _references(tree, guarded):
                if gated or name in defined[path] or path.name == "access.py":
                    continue
                if function is not None and function.startswith("_") and function != "__init__":
                    guarded.add(function)  # a private helper: its own uses must be gated
                    continue
                offenders.append(f"{path.relative_to(REPO)}:{line} {name} (in {function})")
    assert offenders == [], "site data read outside SiteAccess:\n" + "\n".join(offenders)
    assert "_rejects" in guarded  # the scan followed screening's helper


def test_only_the_gate_attaches_the_store() -> None:
    attaching = sorted(
        path.relative_to(REPO)
        for folder in SOURCES
        for path in folder.rglob("*.py")
        if "ATTACH" in path.read_text(encoding="utf-8")
    )
    # store.py attaches its own file only to write a batch (the row group size is an ATTACH
    # option); every read of the store's data goes through the gate.
    assert attaching == [Path("node/access.py"), Path("node/store.py")]


def test_the_policy_catalogue_names_the_store_columns_exactly(hospital_home: NodeHome) -> None:
    from fedrisk.node.auditlog import AuditRecord
    from fedrisk.node.datasets import DATASETS

    with duckdb.connect(str(hospital_home.store), read_only=True) as db:
        for table in ("settlements", "lines", "labels", "batches"):
            columns = [row[0] for row in db.execute(f"DESCRIBE {table}").fetchall()]
            assert DATASETS[table] == tuple(columns), table
    record = AuditRecord("a", "r", "p", "read", "d", (), 0, "allowed", "", "v")
    assert set(DATASETS["audit"]) == set(record.entry(0, "", "", "n"))
