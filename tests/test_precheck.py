"""PreCheck against a real gRPC server on localhost: verdicts, errors, overload, TLS, privacy."""

from __future__ import annotations

import asyncio
import csv
import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from fedrisk.crypto.certs import issue, make_ca
from fedrisk.models.rules.pack import load_rule_pack
from fedrisk.node.access import Principal
from fedrisk.node.auditlog import read_entries
from fedrisk.node.home import NodeHome, init_home
from fedrisk.node.ingest import ingest
from fedrisk.node.precheckclient import ClientTls, channel, check, claim_from_json
from fedrisk.node.precheckfront import PreCheckService
from fedrisk.node.precheckwire import START, FrameReader, claim_frame, frame, status
from fedrisk.node.serve import SERVICE, Running, TlsFiles, WorkerStart, start
from fedrisk.protos.fedrisk.v1 import precheck_pb2, precheck_pb2_grpc
from tests.nodes import operator
from tests.privacy import files_containing
from tests.screening import read_flags

SITE = "H33010000"
FRESH_PATIENT = "11010119900307000X"  # valid check digit, in no stored settlement


def _fresh_patient_id() -> str:
    from fedrisk.node.claimvalidate import _national_id

    for last in "0123456789X":
        candidate = FRESH_PATIENT[:17] + last
        if _national_id(candidate):
            return candidate
    raise AssertionError("no valid check digit")


@pytest.fixture(scope="module")
def sample_node(tmp_path_factory: pytest.TempPathFactory) -> tuple[NodeHome, Path]:
    from tests.conftest import SAMPLE

    root = tmp_path_factory.mktemp("precheck")
    home = init_home(root / "node", SITE)
    site = SAMPLE / SITE
    ingest(operator(home, "ingest"), site / "settlements.csv", site / "lines.csv")
    return home, site


def _access(home: NodeHome) -> WorkerStart:
    return WorkerStart(home.root, Principal("pytest", "precheck"))


@pytest.fixture(scope="module")
def server(sample_node: tuple[NodeHome, Path]) -> Iterator[Running]:
    running = start(_access(sample_node[0]), "127.0.0.1:0")
    yield running
    running.stop(grace=1)


def _rows(site: Path) -> tuple[dict[str, dict[str, str]], dict[str, list[dict[str, str]]]]:
    with (site / "settlements.csv").open(encoding="utf-8") as handle:
        settlements = {r["settlement_id"]: r for r in csv.DictReader(handle)}
    lines: dict[str, list[dict[str, str]]] = {}
    with (site / "lines.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            lines.setdefault(row["settlement_id"], []).append(row)
    return settlements, lines


def _claim(settlement: dict[str, str], lines: list[dict[str, str]], **change: str):  # type: ignore[no-untyped-def]
    new_id = change.pop("settlement_id", settlement["settlement_id"])
    s = dict(settlement, settlement_id=new_id, **change)
    return claim_from_json(
        {
            "request_id": "t",
            "settlement": s,
            "lines": [dict(line, settlement_id=new_id) for line in lines],
        }
    )


def _first_claim(site: Path, **change: str):  # type: ignore[no-untyped-def]
    """The sample site's first settlement as a claim (with ``change``), and its lines' count."""
    settlements, lines = _rows(site)
    first = next(iter(settlements))
    return _claim(settlements[first], lines[first], **change), len(lines[first])


def _long_claim(site: Path, count: int, settlement_id: str):  # type: ignore[no-untyped-def]
    """A claim of ``count`` lines: a settlement without boxes, its first line repeated."""
    settlements, lines = _rows(site)
    first = next(s for s, ls in lines.items() if ls and not any(x["trace_code"] for x in ls))
    many = [dict(lines[first][0], line_no=str(n)) for n in range(1, count + 1)]
    return _claim(settlements[first], many, settlement_id=settlement_id)


def _target(running: Running) -> str:
    return f"127.0.0.1:{running.port}"


def test_each_violation_gets_its_hit_and_clean_claims_are_allowed(
    sample_node: tuple[NodeHome, Path], server: Running, tmp_path: Path
) -> None:
    from fedrisk.node.screen import screen_node

    home, site = sample_node
    report = screen_node(operator(home, "screening"), tmp_path / "flags.jsonl")
    flagged: dict[str, set[str]] = {}
    for flag in read_flags(report.out):
        flagged.setdefault(str(flag["settlement_id"]), set()).add(str(flag["rule_id"]))
    settlements, lines = _rows(site)
    pack = load_rule_pack(None)
    rules_seen: set[str] = set()
    allowed = 0
    for settlement_id, stored in _stored_ids(home):
        claim = _claim(settlements[settlement_id], lines.get(settlement_id, []))
        verdict = check(_target(server), claim)
        hits = {h.rule_id for h in verdict.hits}
        expected = flagged.get(settlement_id, set()) - {"data_quality"} if stored else set()
        assert hits - {"data_quality"} == expected, settlement_id
        rules_seen |= hits
        worst = max((["info", "warn", "block"].index(h.severity) for h in verdict.hits), default=0)
        want = [precheck_pb2.ALLOW, precheck_pb2.WARN, precheck_pb2.BLOCK][worst]
        assert verdict.decision == want
        allowed += verdict.decision == precheck_pb2.ALLOW
        assert verdict.kb_version == home.knowledge_base().version
        assert verdict.rule_pack_version == pack.version
    assert allowed > 30  # clean claims are allowed
    assert {
        "gender_conflict",
        "age_conflict",
        "over_quantity",
        "indication_mismatch",
        "interaction",
        "batch_prescribing",
        "split_admission",
    } <= rules_seen


def _stored_ids(home: NodeHome) -> list[tuple[str, bool]]:
    import duckdb

    with duckdb.connect(str(home.store), read_only=True) as db:
        rows = db.execute("SELECT settlement_id FROM settlements").fetchall()
    return [(str(r[0]), True) for r in rows]


def test_a_box_already_settled_here_is_blocked(
    sample_node: tuple[NodeHome, Path], server: Running
) -> None:
    settlements, lines = _rows(sample_node[1])
    with_trace = next(s for s, ls in lines.items() if any(line["trace_code"] for line in ls))
    claim = _claim(settlements[with_trace], lines[with_trace], settlement_id="NEW-CLAIM-1")
    verdict = check(_target(server), claim)
    assert verdict.decision == precheck_pb2.BLOCK
    hit = next(h for h in verdict.hits if h.rule_id == "duplicate_trace_code")
    assert with_trace in json.loads(hit.evidence_json)["other_settlements"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"patient_id": "110101194005168668"}, "settlement.patient_id"),
        ({"gender": "X"}, "settlement.gender"),
        ({"site_id": "H99"}, "settlement.site_id"),
    ],
)
def test_a_malformed_claim_is_invalid_argument_naming_the_field(
    sample_node: tuple[NodeHome, Path], server: Running, change: dict[str, str], field: str
) -> None:
    claim, _ = _first_claim(sample_node[1], **change)
    with pytest.raises(grpc.RpcError) as raised:
        check(_target(server), claim)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith(field)


def test_a_malformed_line_names_the_line(
    sample_node: tuple[NodeHome, Path], server: Running
) -> None:
    settlements, lines = _rows(sample_node[1])
    first = next(s for s, ls in lines.items() if len(ls) >= 2)
    broken = [lines[first][0], dict(lines[first][1], quantity="-2")]
    with pytest.raises(grpc.RpcError) as raised:
        check(_target(server), _claim(settlements[first], broken))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("lines[1].quantity")


class _Slow(PreCheckService):
    async def _answer(self, claim, context):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.3)
        return await super()._answer(claim, context)


def test_overload_is_refused_with_resource_exhausted_and_the_server_keeps_serving(
    sample_node: tuple[NodeHome, Path],
) -> None:
    home, site = sample_node
    running = start(_access(home), "127.0.0.1:0", max_pending=2, service=_Slow)
    try:
        claim, _ = _first_claim(site)
        with ThreadPoolExecutor(12) as pool:
            outcomes = list(pool.map(lambda _: _code(_target(running), claim), range(12)))
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in outcomes
        assert grpc.StatusCode.OK in outcomes
        # Still serving. gRPC's aio limiter decides on the next call while it is still at the
        # limit, so the first call after a burst may be refused too (docs/precheck.md); no more.
        after = [_code(_target(running), claim) for _ in range(3)]
        assert after[1:] == [grpc.StatusCode.OK, grpc.StatusCode.OK], after
    finally:
        running.stop(grace=1)


def _code(target: str, claim: precheck_pb2.Claim) -> grpc.StatusCode:
    try:
        check(target, claim, timeout=10)
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_health_and_reflection(server: Running) -> None:
    with channel(_target(server)) as opened:
        health = health_pb2_grpc.HealthStub(opened)
        reply = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with channel(_target(server)) as opened:
        stub = reflection_pb2_grpc.ServerReflectionStub(opened)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        reply = next(iter(stub.ServerReflectionInfo(iter([request]), timeout=5)))
        names = {s.name for s in reply.list_services_response.service}
        assert SERVICE in names


def _pki(tmp_path: Path) -> dict[str, Path]:
    ca = make_ca("test-ca")
    server = issue(ca, "precheck", hosts=("localhost", "127.0.0.1"))
    client = issue(ca, "his", client=True)
    files = {
        "ca": ca.cert_pem,
        "server.crt": server.cert_pem,
        "server.key": server.key_pem,
        "client.crt": client.cert_pem,
        "client.key": client.key_pem,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


def test_tls_and_mutual_tls(sample_node: tuple[NodeHome, Path], tmp_path: Path) -> None:
    home, site = sample_node
    pki = _pki(tmp_path)
    claim, _ = _first_claim(site)
    first = claim.settlement.settlement_id
    tls = TlsFiles(pki["server.crt"], pki["server.key"])
    running = start(_access(home), "127.0.0.1:0", tls=tls)
    try:
        target = f"localhost:{running.port}"
        assert check(target, claim, ClientTls(pki["ca"])).settlement_id == first
        with pytest.raises(grpc.RpcError):  # a plaintext client cannot talk to it
            check(target, claim, timeout=3)
    finally:
        running.stop(grace=1)
    mutual = TlsFiles(pki["server.crt"], pki["server.key"], pki["ca"])
    running = start(_access(home), "127.0.0.1:0", tls=mutual)
    try:
        target = f"localhost:{running.port}"
        with_cert = ClientTls(pki["ca"], pki["client.crt"], pki["client.key"])
        assert check(target, claim, with_cert).settlement_id == first
        with pytest.raises(grpc.RpcError) as refused:  # no client certificate: refused
            check(target, claim, ClientTls(pki["ca"]), timeout=3)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop(grace=1)


def test_nothing_the_server_writes_holds_the_raw_patient_id(
    sample_node: tuple[NodeHome, Path], server: Running
) -> None:
    home, site = sample_node
    raw = _fresh_patient_id()
    claim, _ = _first_claim(site, settlement_id="PRIV-1", patient_id=raw)
    for _ in range(3):
        check(_target(server), claim)
    server.reload()  # the worker that answered retires: it writes its audit entries and exits
    entries = (home.audit / "log.jsonl").read_text(encoding="utf-8")
    assert entries.count('"dataset":"claims"') >= 3  # the calls were audited
    assert files_containing(home.root, {raw, raw[:17]}) == {}


def test_sigterm_stops_the_server_gracefully(
    sample_node: tuple[NodeHome, Path], tmp_path: Path
) -> None:
    home, _ = sample_node
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fedrisk.cli.main",
            "node",
            "serve",
            "--home",
            str(home.root),
            "--listen",
            "127.0.0.1:0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(6)
        process.send_signal(signal.SIGHUP)  # reload the history: the server keeps running
        time.sleep(1)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "PreCheck serving" in out and "PreCheck stopped" in out


def test_reload_picks_up_a_newly_ingested_box(
    sample_node: tuple[NodeHome, Path], tmp_path: Path
) -> None:
    home, site = sample_node
    settlements, lines = _rows(site)
    source = next(s for s, ls in lines.items() if any(line["trace_code"] for line in ls))
    fresh = "99999999999999999917"
    boxed = [dict(line, trace_code=fresh if line["trace_code"] else "") for line in lines[source]]
    claim = _claim(settlements[source], boxed, settlement_id="RELOAD-A")
    running = start(_access(home), "127.0.0.1:0")
    try:
        assert "duplicate_trace_code" not in {
            h.rule_id for h in check(_target(running), claim).hits
        }
        _ingest_rows(
            home,
            tmp_path,
            dict(settlements[source], settlement_id="RELOAD-B"),
            [dict(line, settlement_id="RELOAD-B") for line in boxed],
        )
        before = {h.rule_id for h in check(_target(running), claim).hits}
        assert "duplicate_trace_code" not in before  # the loaded history is what it was …
        running.reload()
        after = check(_target(running), claim)
        assert "duplicate_trace_code" in {h.rule_id for h in after.hits}  # … until a reload
        assert after.decision == precheck_pb2.BLOCK
    finally:
        running.stop(grace=1)


def _ingest_rows(
    home: NodeHome, folder: Path, settlement: dict[str, str], lines: list[dict[str, str]]
) -> None:
    for name, rows in (("settlements.csv", [settlement]), ("lines.csv", lines)):
        with (folder / name).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    report = ingest(operator(home, "ingest"), folder / "settlements.csv", folder / "lines.csv")
    assert all(f.rejected == 0 for f in report.files), report


def test_a_failed_reload_keeps_the_server_running(capsys: pytest.CaptureFixture[str]) -> None:
    import os
    import threading

    from fedrisk.models.errors import FedriskError
    from fedrisk.node.serve import serve_until_signalled

    class _Running:
        reloads = stops = 0

        def reload(self) -> None:
            self.reloads += 1
            raise FedriskError("the active model no longer verifies")

        def stop(self, grace: float) -> None:
            self.stops += 1

    running = _Running()

    def signal_later() -> None:
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGTERM)

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    threading.Thread(target=signal_later).start()
    try:
        serve_until_signalled(running, grace=0)  # type: ignore[arg-type]
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert (running.reloads, running.stops) == (1, 1)  # the refused reload did not stop it
    assert "reload refused" in capsys.readouterr().err


def test_spend_already_settled_this_month_counts_towards_the_pharmacy_limit(
    tmp_path: Path,
) -> None:
    """The patient's earlier pharmacy settlements this month, read from the store, push a claim
    that alone stays under 8,000 RMB over the limit; a patient without them is not flagged."""
    from decimal import Decimal

    from tests.conftest import SAMPLE

    site = SAMPLE / "P33010701"
    home = init_home(tmp_path / "node", site.name)
    ingest(operator(home, "ingest"), site / "settlements.csv", site / "lines.csv")
    settlements, lines = _rows(site)
    source = next(s for s in settlements if lines.get(s))
    patient, month = settlements[source]["patient_id"], settlements[source]["settle_time"][:7]
    earlier = [
        Decimal(s["total_amount"])
        for s in settlements.values()
        if s["patient_id"] == patient and s["settle_time"].startswith(month)
    ]
    line = dict(lines[source][0], line_no="1", trace_code="", quantity="1", days_supply="")
    price = Decimal("8000.00") - sum(earlier)  # with what was settled before: exactly the limit
    line.update(unit_price=str(price), amount=str(price))
    claim_settlement = dict(settlements[source], total_amount=str(price), fund_paid="0.00")
    running = start(_access(home), "127.0.0.1:0")
    try:
        found = {}
        for patient_id in (patient, _fresh_patient_id()):
            claim = _claim(
                dict(claim_settlement, patient_id=patient_id), [line], settlement_id="SPEND-1"
            )
            hits = check(_target(running), claim).hits
            found[patient_id] = [h for h in hits if h.rule_id == "monthly_pharmacy_spend"]
    finally:
        running.stop(grace=1)
    assert not found[_fresh_patient_id()]
    evidence = json.loads(found[patient][0].evidence_json)
    assert evidence["spend_at_this_site"] == 8000.0
    assert evidence["other_settlements_this_month"] == len(earlier)
    assert patient not in found[patient][0].evidence_json


def test_check_stream_answers_each_claim_in_order_and_an_error_ends_it(
    sample_node: tuple[NodeHome, Path], server: Running
) -> None:
    settlements, lines = _rows(sample_node[1])
    with_trace = next(s for s, ls in lines.items() if any(line["trace_code"] for line in ls))
    first = next(iter(settlements))
    claims = [
        _claim(settlements[first], lines[first], settlement_id="STREAM-1"),
        _claim(settlements[with_trace], lines[with_trace], settlement_id="STREAM-2"),
        _claim(settlements[first], lines[first], settlement_id="STREAM-3", gender="X"),
        _claim(settlements[first], lines[first], settlement_id="STREAM-4"),
    ]
    with channel(_target(server)) as opened:
        stub = precheck_pb2_grpc.PreCheckServiceStub(opened)
        answers = stub.CheckStream(iter(claims), timeout=10)
        received = [next(answers), next(answers)]
        with pytest.raises(grpc.RpcError) as raised:
            next(answers)
    assert [v.settlement_id for v in received] == ["STREAM-1", "STREAM-2"]
    assert received[1].decision == precheck_pb2.BLOCK  # its box is already settled here
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("settlement.gender")


def test_a_claim_larger_than_one_read_of_the_worker_is_checked(
    sample_node: tuple[NodeHome, Path], server: Running
) -> None:
    """A claim of 2,000 lines is several reads of the worker's pipe (64 KiB each)."""
    from fedrisk.node.precheckworker import READ_SIZE

    claim = _long_claim(sample_node[1], 2000, "BIG-1")
    assert claim.ByteSize() > 2 * READ_SIZE
    verdict = check(_target(server), claim)
    assert verdict.settlement_id == "BIG-1"
    assert verdict.decision in (precheck_pb2.ALLOW, precheck_pb2.WARN, precheck_pb2.BLOCK)


def test_bytes_that_are_not_a_claim_are_invalid_argument(server: Running) -> None:
    with channel(_target(server)) as opened:
        raw = opened.unary_unary(f"/{SERVICE}/Check")  # bytes in, bytes out
        with pytest.raises(grpc.RpcError) as raised:
            raw(b"\xff\xff\xff", timeout=10)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a fedrisk.v1.Claim" in raised.value.details()


def test_a_check_worker_that_dies_is_replaced_and_the_server_keeps_serving(
    sample_node: tuple[NodeHome, Path],
) -> None:
    import os

    home, site = sample_node
    claim, _ = _first_claim(site)
    running = start(_access(home), "127.0.0.1:0")
    try:
        dead = running.worker_pid
        assert dead is not None and _code(_target(running), claim) == grpc.StatusCode.OK
        os.kill(dead, signal.SIGKILL)
        codes = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            codes.append(_code(_target(running), claim))
            if codes[-1] == grpc.StatusCode.OK:
                break
            time.sleep(0.1)
        # Refused as UNAVAILABLE (retry) while the replacement loads, never anything else.
        assert set(codes[:-1]) <= {grpc.StatusCode.UNAVAILABLE}, codes
        assert codes[-1] == grpc.StatusCode.OK
        assert running.worker_pid not in (None, dead)
        with channel(_target(running)) as opened:
            health = health_pb2_grpc.HealthStub(opened)
            reply = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        running.stop(grace=1)


def test_a_check_worker_that_cannot_start_is_reported(
    sample_node: tuple[NodeHome, Path],
) -> None:
    from fedrisk.models.errors import FedriskError

    home, _ = sample_node
    with pytest.raises(FedriskError, match="could not start") as raised:
        start(WorkerStart(home.root, Principal("pytest", "no-such-role")), "127.0.0.1:0")
    assert "no-such-role" in str(raised.value)


def _checks_audited(home: NodeHome, rows: int) -> int:
    """The audit log's entries of checks of claims with ``rows`` - 1 lines."""
    return sum(
        1
        for e in read_entries(home.audit)
        if (e["purpose"], e["dataset"], e["rows"]) == ("precheck", "claims", rows)
    )


def _worker_answers(
    home: NodeHome, claims: list[tuple[bytes, float | None]]
) -> list[tuple[int, bytes]]:
    """A real check worker, started as the front starts it, then sent ``claims`` (bytes,
    deadline) in one write; its answers. Returns once the worker has exited (its audit entries
    written)."""
    ours, theirs = socket.socketpair()
    with ours:
        command = [sys.executable, "-m", "fedrisk.node.precheckworker", str(theirs.fileno())]
        worker = subprocess.Popen(command, pass_fds=(theirs.fileno(),))
        theirs.close()
        reader = FrameReader()
        ours.sendall(frame(START, _access(home).encode()))
        assert [status(code) for code, _ in _frames(ours, reader, 1)] == [grpc.StatusCode.OK]
        ours.sendall(b"".join(claim_frame(claim, deadline) for claim, deadline in claims))
        answers = _frames(ours, reader, len(claims))
    assert worker.wait(timeout=60) == 0
    return answers


def _frames(link: socket.socket, reader: FrameReader, count: int) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    while len(got) < count:
        data = link.recv(1 << 16)
        assert data, f"the worker closed its pipe after {len(got)} of {count} frames"
        got += reader.feed(data)
    return got


def test_the_worker_skips_a_claim_whose_deadline_passed_while_it_queued(
    sample_node: tuple[NodeHome, Path],
) -> None:
    """Unchecked and so unaudited: nothing of it was read. The claims around it are checked."""
    home, site = sample_node
    claim, count = _first_claim(site)
    rows = 1 + count
    before = _checks_audited(home, rows)
    now = time.monotonic()  # the worker loads for a few seconds after this: +120 s is ahead
    sent = claim.SerializeToString()
    answers = _worker_answers(home, [(sent, None), (sent, now - 1), (sent, now + 120)])
    codes = [status(code) for code, _ in answers]
    ok, late = grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED
    assert codes == [ok, late, ok]
    assert answers[1][1].decode().endswith("it was not checked")
    assert _checks_audited(home, rows) == before + 2


def test_a_call_whose_deadline_passes_behind_long_checks_is_not_checked(
    sample_node: tuple[NodeHome, Path], server: Running
) -> None:
    """The front tells the worker each call's deadline: a call that waited in the worker's
    queue past it is answered DEADLINE_EXCEEDED and never checked (so not audited)."""
    home, site = sample_node
    long = _long_claim(site, 8000, "LONG-1")
    short, count = _first_claim(site, settlement_id="SHORT-1")
    rows = 1 + count
    before = _checks_audited(home, rows)
    with channel(_target(server)) as opened:
        stub = precheck_pb2_grpc.PreCheckServiceStub(opened)
        started = time.monotonic()
        # ~40 ms of checking each on a fast host, ~0.2 s on a slow one: the short claim waits
        # behind all six in the worker's queue, longer than its 0.1 s.
        ahead = [stub.Check.future(long, timeout=60) for _ in range(6)]
        time.sleep(0.05)
        with pytest.raises(grpc.RpcError) as raised:
            stub.Check(short, timeout=0.1)
        assert {call.result().settlement_id for call in ahead} == {"LONG-1"}
        took = time.monotonic() - started
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert took > 0.15, f"the long claims took {took:.3f} s: too short to hold the other back"
    time.sleep(0.5)  # the worker's audit writer commits every ~20 ms
    assert _checks_audited(home, rows) == before
