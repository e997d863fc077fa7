"""PreCheck's per-claim features equal the SQL pipeline's for every stored settlement."""

from __future__ import annotations

from collections import defaultdict
from contextlib import closing

import duckdb
import numpy as np
import pytest

from fedrisk.models.claimfeatures import READS, FeatureContext, claim_vector
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
