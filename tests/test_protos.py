"""The wire contract: the PreCheck proto follows data contract v1 and its stubs are current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fedrisk.models.schema import LINE_COLUMNS, SETTLEMENT_COLUMNS
from fedrisk.protos.fedrisk.v1 import precheck_pb2, precheck_pb2_grpc

REPO = Path(__file__).resolve().parent.parent


def test_committed_stubs_are_what_the_proto_generates() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "protos" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_claim_fields_are_the_contract_columns_in_order() -> None:
    settlement = [f.name for f in precheck_pb2.Settlement.DESCRIPTOR.fields]
    line = [f.name for f in precheck_pb2.Line.DESCRIPTOR.fields]
    assert tuple(settlement) == SETTLEMENT_COLUMNS
    assert tuple(line) == LINE_COLUMNS


def test_a_claim_survives_the_wire() -> None:
    claim = precheck_pb2.Claim(
        request_id="r-1",
        settlement=precheck_pb2.Settlement(settlement_id="S1", site_id="H1", gender="F"),
        lines=[precheck_pb2.Line(settlement_id="S1", line_no="1", item_code="X")],
    )
    back = precheck_pb2.Claim.FromString(claim.SerializeToString())
    assert back == claim
    assert precheck_pb2.Decision.Name(precheck_pb2.BLOCK) == "BLOCK"
    assert hasattr(precheck_pb2_grpc, "PreCheckServiceServicer")
    assert hasattr(precheck_pb2_grpc, "add_PreCheckServiceServicer_to_server")
