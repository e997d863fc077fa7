"""docs/precheck.md runs as written: its ```bash blocks, joined, from the repository root."""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from contextlib import ExitStack, suppress
from pathlib import Path

import pytest

from fedrisk.models.schema import LINE_COLUMNS, SETTLEMENT_COLUMNS

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "precheck.md"
PORTS = ("50917", "50918")  # the guide's fixed ports: plaintext, mutual TLS


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", GUIDE.read_text(encoding="utf-8"), flags=re.S)


def _free_ports(count: int) -> list[int]:
    """Ports nobody listens on now (held open together, so they differ)."""
    with ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"')]


def test_precheck_guide_runs_as_written(tmp_path: Path) -> None:
    if shutil.which("fedrisk") is None:
        pytest.skip("the fedrisk console script is not installed")
    script = "\n".join(_blocks("bash"))
    for port, free in zip(PORTS, _free_ports(len(PORTS)), strict=True):
        assert f":{port}" in script
        script = re.sub(rf":{port}\b", f":{free}", script)
    # Its own process group, so that a timeout also stops the servers it started.
    process = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script.replace("/tmp/", f"{tmp_path}/")],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "160"},
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            process.communicate()
    assert process.returncode == 0, out + err

    # The CLI's verdict: BLOCK, the box already settled in S00000001.
    verdict = json.loads(out[out.index("{\n") : out.index("\n}\n") + 2])
    assert verdict["request_id"] == "his-0001" and verdict["settlement_id"] == "NEW-0001"
    assert verdict["decision"] == "BLOCK"
    hit = next(h for h in verdict["hits"] if h["rule_id"] == "duplicate_trace_code")
    assert hit["severity"] == "block"
    assert json.loads(hit["evidence_json"])["other_settlements"] == ["S00000001"]
    assert verdict["kb_version"] and verdict["rule_pack_version"]

    # The Python client: the same order with a new box is allowed.
    assert "python client: his-0002 NEW-0001 ALLOW" in out
    # The malformed claim: refused with the field named, exit 3.
    assert "INVALID_ARGUMENT: lines[1].quantity: not greater than 0" in out
    assert "refused (exit 3)" in out

    # The audit log: one claims entry per call, purpose precheck, and no raw patient ID.
    entries = _json_lines(out)
    assert entries and {e["purpose"] for e in entries} == {"precheck"}
    claims = [e for e in entries if e["dataset"] == "claims"]
    assert len(claims) == 3 and {e["rows"] for e in claims} == {3}  # BLOCK, ALLOW, refused
    assert {e["decision"] for e in entries} == {"allowed"}
    patient = "310104194008146111"  # S00000001's patient, sent in every claim
    assert patient not in json.dumps(entries)

    # Mutual TLS: the verdict with a client certificate, UNAVAILABLE without one.
    assert out.count('"decision": "BLOCK"') == 2
    assert "UNAVAILABLE: " in out and out.count("refused (exit 3)") == 2

    # Both servers were ready, then stopped gracefully (exit 0 is checked by `wait`).
    assert out.count("is SERVING") == 2
    assert "(plaintext (use TLS outside a test))" in out and "(mutual TLS)" in out
    assert out.count("PreCheck stopped") == 2


def test_precheck_guide_python_and_tables_match_the_code() -> None:
    for block in _blocks("python"):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = importlib.import_module(node.module)
                for alias in node.names:  # a name of the module, or a submodule
                    name = f"{node.module}.{alias.name}"
                    assert hasattr(module, alias.name) or importlib.util.find_spec(name), name
    guide = GUIDE.read_text(encoding="utf-8")
    for message, columns in (("Settlement", SETTLEMENT_COLUMNS), ("Line", LINE_COLUMNS)):
        fields = ", ".join(f"`{c}`" for c in columns)
        assert re.search(rf"^\| `{message}`[^|]*\| {re.escape(fields)} \|$", guide, re.M), message
    codes = ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "UNAVAILABLE")
    for code in (*codes, "PERMISSION_DENIED"):
        assert f"| `{code}` |" in guide, code
