"""PreCheck's per-claim features equal the SQL pipeline's for every stored settlement."""

from __future__ import annotations

import math
from collections import defaultdict
from contextlib import closing

import duckdb
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedrisk.models.claimfeatures import READS, FeatureContext, _los_vs_drg, claim_vector
from fedrisk.models.features import SPEC, claim_features, feature_matrix
from fedrisk.models.rules.engine import evaluate
from fedrisk.node.claims import attach_claims
from fedrisk.node.home import NodeHome
from fedrisk.synth import generate_dataset
from tests.nodes import operator
from tests.screening import ingest_sites
from tests.test_claimcheck import _stored_claims


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> NodeHome:
    root = tmp_path_factory.mktemp("claimfeatures")
    generate_dataset(root / "data", sites=1, settlements=6_000, seed=5)
    (home,) = ingest_sites(root / "data", root / "nodes").values()
    return home


def test_every_stored_settlement_gets_the_sql_features(hospital: NodeHome) -> None:
    from fedrisk.models.features import READS as FEATURE_READS

    with closing(duckdb.connect()) as db:
        attach_claims(operator(hospital, "training"), db, FEATURE_READS)
        evaluate(db, hospital.knowledge_base(), hospital.rule_pack())
        sql = claim_features(db)
        flags = db.execute("SELECT settlement_id, rule_id FROM rule_flags").fetchall()
        settlements = db.sql(f"SELECT {', '.join(READS['settlements'])} FROM settlements")
        lines = db.sql(f"SELECT {', '.join(READS['lines'])} FROM lines")
        context = FeatureContext.from_tables(settlements.to_arrow_table(), lines.to_arrow_table())
    hits: dict[str, set[str]] = defaultdict(set)
    for settlement, rule in flags:
        hits[settlement].add(rule)
    kb = hospital.knowledge_base()
    claims = _stored_claims(hospital)
    ids = sql.column("settlement_id").to_pylist()
    expected = feature_matrix(sql, SPEC)
    got = np.vstack([claim_vector(claims[i], context, kb, hits[i], in_store=True) for i in ids])
    close = np.isclose(got, expected, rtol=1e-12, atol=0, equal_nan=True)
    wrong = {SPEC.names[j]: int((~close[:, j]).sum()) for j in range(len(SPEC.names))}
    assert {k: v for k, v in wrong.items() if v} == {}
    assert len(ids) > 5_000 and np.isfinite(got).sum() > len(ids) * 20  # real values compared


@given(
    stays=st.lists(st.integers(min_value=0, max_value=40), max_size=12).map(sorted),
    los=st.integers(min_value=0, max_value=40),
    extra=st.integers(min_value=0, max_value=1),
)
def test_a_new_stay_is_counted_in_its_drg_median_as_if_sorted_in(
    stays: list[int], los: int, extra: int
) -> None:
    """PreCheck counts a new claim's stay in its DRG group's median without sorting the group
    again; the result is the median of the group sorted with it (or without, for a stored one)."""
    merged = sorted([*stays, los]) if extra else stays
    middle = len(merged) // 2
    if not merged:
        median = math.nan
    else:
        median = merged[middle] if len(merged) % 2 else (merged[middle - 1] + merged[middle]) / 2
    expected = los / median if median else math.nan
    got = _los_vs_drg(los, stays, extra)
    assert got == expected or (math.isnan(got) and math.isnan(expected))
