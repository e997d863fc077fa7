"""A PreCheck client: a claim as JSON in, the verdict out (what an HIS integrator writes).

The JSON is ``{"request_id": …, "settlement": {contract columns}, "lines": [{contract
columns}, …]}``; every value is sent as text, as the contract's CSV would hold it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from fedrisk.models.errors import ContractError
from fedrisk.models.schema import LINE_COLUMNS, SETTLEMENT_COLUMNS
from fedrisk.protos.fedrisk.v1 import precheck_pb2, precheck_pb2_grpc


@dataclass(frozen=True)
class ClientTls:
    """The server's CA, and for mutual TLS the client's own certificate and key."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None


def claim_from_json(data: dict[str, Any]) -> precheck_pb2.Claim:
    """A Claim message from the JSON form; unknown columns are refused by name."""
    settlement = data.get("settlement")
    lines = data.get("lines", [])
    if not isinstance(settlement, dict) or not isinstance(lines, list):
        raise ContractError('a claim is {"settlement": {…}, "lines": [{…}, …]}')
    return precheck_pb2.Claim(
        request_id=str(data.get("request_id", "")),
        settlement=precheck_pb2.Settlement(**_text(settlement, SETTLEMENT_COLUMNS, "settlement")),
        lines=[
            precheck_pb2.Line(**_text(line, LINE_COLUMNS, f"lines[{i}]"))
            for i, line in enumerate(lines)
        ],
    )


def _text(record: dict[str, Any], columns: tuple[str, ...], where: str) -> dict[str, str]:
    unknown = sorted(set(record) - set(columns))
    if unknown:
        raise ContractError(f"{where}: unknown column(s) {', '.join(unknown)}")
    return {k: "" if v is None else str(v) for k, v in record.items()}


def channel(target: str, tls: ClientTls | None = None) -> grpc.Channel:
    """A channel to a PreCheck server (plain, TLS, or mutual TLS)."""
    if tls is None:
        return grpc.insecure_channel(target)
    chain = tls.cert.read_bytes() if tls.cert else None
    key = tls.key.read_bytes() if tls.key else None
    credentials = grpc.ssl_channel_credentials(tls.ca.read_bytes(), key, chain)
    return grpc.secure_channel(target, credentials)


def check(
    target: str, claim: precheck_pb2.Claim, tls: ClientTls | None = None, timeout: float = 5.0
) -> precheck_pb2.Verdict:
    """Send one claim; raises ``grpc.RpcError`` with the server's status on failure."""
    with channel(target, tls) as opened:
        stub = precheck_pb2_grpc.PreCheckServiceStub(opened)  # type: ignore[no-untyped-call]
        verdict: precheck_pb2.Verdict = stub.Check(claim, timeout=timeout)
        return verdict
