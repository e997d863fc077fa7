"""What the coordinator receives in matching, and a node whose policy forbids a job.

The wire check scans every byte the nodes sent back over a full run of all five jobs: no raw
or pseudonymous patient or pharmacist ID, no trace code, no amount (as text or as a 64-bit
integer in fen). The coordinator holds only the public HE context, which cannot decrypt.
"""

from __future__ import annotations

import csv
import re
import shutil
import struct
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
import tenseal as ts

from fedrisk.crypto import he
from fedrisk.crypto.signed import unverified_payload
from fedrisk.models.kb import load_kb
from fedrisk.node.auditlog import read_entries
from fedrisk.node.home import NodeHome
from fedrisk.node.matching.results import results_file
from fedrisk.protos.matching import unpack_ciphertexts
from fedrisk.synth import generate_dataset
from tests import oracle
from tests.matching import Federation, federate
from tests.screening import ingest_sites
from tests.test_matching import CROSS_SITE

KB = load_kb()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("matchprivacy")
    generate_dataset(root / "data", sites=3, settlements=1500, seed=5)
    return root / "data"


def _secrets(data_dir: Path, homes: list[NodeHome]) -> set[bytes]:
    """Raw and pseudonymous patient and pharmacist IDs, trace codes and amounts."""
    found: set[bytes] = set()
    for folder in oracle.site_dirs(data_dir):
        with (folder / "settlements.csv").open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                found |= {row["patient_id"].encode(), row["pharmacist_id"].encode()}
                found |= _amount(row["total_amount"])
    for home in homes:
        with duckdb.connect(str(home.store), read_only=True) as db:
            rows = db.execute(
                "SELECT patient_pseudonym, pharmacist_pseudonym, trace_code, amount"
                " FROM settlements JOIN lines USING (settlement_id)"
            ).fetchall()
        for patient, pharmacist, trace, amount in rows:
            found |= {str(v).encode() for v in (patient, pharmacist, trace) if v}
            found |= _amount(str(amount))
    return {s for s in found if s}


def _amount(text: str) -> set[bytes]:
    """An amount as the text a node stores (if long enough not to occur by chance) and as the
    little-endian 64-bit fen a node would encrypt."""
    if not re.fullmatch(r"\d+\.\d\d", text):
        return set()
    fen = int(Decimal(text) * 100)
    out = {struct.pack("<q", fen)} if fen >= 100_000 else set()
    return out | ({text.encode()} if len(text) >= 7 else set())


def test_nothing_readable_reaches_the_coordinator(data_dir: Path, tmp_path: Path) -> None:
    homes = ingest_sites(data_dir, tmp_path / "homes")
    federation = federate(list(homes.values()))
    for report in federation.run_all(list(CROSS_SITE)):
        assert report.bytes_in and not report.dropped
    assert federation.received
    secrets = _secrets(data_dir, list(homes.values()))
    assert len(secrets) > 1000
    leaked = {s for s in secrets for value in federation.received if s in value}
    assert not leaked, sorted(leaked)[:5]
    # what the coordinator holds cannot decrypt what it received
    public = he.load_context(federation.public_context)
    assert he.is_public(public)
    values = [v for v in federation.received if b"match.values" in v]
    assert values
    sealed = next(iter(unpack_ciphertexts(unverified_payload(values[0])).values()))
    with pytest.raises(ValueError):
        ts.bfv_vector_from(public, sealed).decrypt()


def _forbid(home: NodeHome, purpose: str) -> None:
    """Remove ``purpose`` (and its read table) from the node's policy."""
    text = home.policy_file.read_text(encoding="utf-8")
    section = re.compile(
        rf"^\[roles\.operator\.purposes\.{purpose}(\.read)?\]\n(?:(?!\[).*\n)*", re.M
    )
    home.policy_file.write_text(section.sub("", text), encoding="utf-8")


def test_a_node_whose_policy_forbids_the_job_takes_no_part_and_is_audited(
    data_dir: Path, tmp_path: Path
) -> None:
    job = "monthly_pharmacy_spend"
    homes = ingest_sites(data_dir, tmp_path / "homes")
    refusing = next(h for site, h in homes.items() if site.startswith("P"))
    _forbid(refusing, job)
    federation: Federation = federate(list(homes.values()))
    report = federation.run(job)
    assert refusing.site_id in report.refused and "denied" in report.refused[refusing.site_id]
    assert refusing.site_id not in report.tokens
    assert not results_file(refusing.root, job, "all").exists()
    entries = [e for e in read_entries(refusing.audit) if e["purpose"] == job]
    assert entries and all(e["decision"] == "denied" for e in entries)
    assert not any(
        e["dataset"] in ("vault", "settlements") and e["decision"] == "allowed" for e in entries
    )
    # the others match as if the refusing site did not exist
    others = tmp_path / "others"
    for folder in oracle.site_dirs(data_dir):
        if folder.name != refusing.site_id:
            shutil.copytree(folder, others / folder.name)
    expected = {(job, *key) for key in oracle.evaluate_dataset(oracle.load(others, KB), KB)[job]}
    assert federation.flags(job) == expected


def test_a_node_that_drops_before_its_values_is_left_out_and_the_rest_still_agree(
    data_dir: Path, tmp_path: Path
) -> None:
    job = "monthly_pharmacy_spend"
    homes = ingest_sites(data_dir, tmp_path / "homes")
    federation = federate(list(homes.values()))
    gone = next(n for n, h in federation.homes.items() if h.site_id.startswith("P"))
    federation.silent.add(("match_values", gone))
    report = federation.run(job)
    site = federation.homes[gone].site_id
    assert report.dropped == {site: "no answer with values"}
    others = tmp_path / "others"
    for folder in oracle.site_dirs(data_dir):
        if folder.name != site:
            shutil.copytree(folder, others / folder.name)
    expected = {(job, *key) for key in oracle.evaluate_dataset(oracle.load(others, KB), KB)[job]}
    # the others match as if it did not exist; it decides nothing
    assert {f for f in federation.flags(job) if f[1] != site} == expected
    assert not results_file(federation.homes[gone].root, job, "all").exists()
