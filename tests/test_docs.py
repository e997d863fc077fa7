"""The guides' examples run as written (paths moved into a temporary folder)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import DEMO_ARGS, DemoRun

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "operator.md"


def _blocks(markdown: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", markdown, flags=re.S)


def _run(script: str, tmp_path: Path, timeout: int) -> subprocess.CompletedProcess[str]:
    """Run a guide's shell example from the repository root, its /tmp/ paths under tmp_path."""
    if shutil.which("fedrisk") is None:
        pytest.skip("the fedrisk console script is not installed")
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script.replace("/tmp/", f"{tmp_path}/")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "160"},
    )


def _guide(name: str) -> str:
    return "\n".join(_blocks((REPO / "docs" / name).read_text(encoding="utf-8")))


def test_operator_guide_sample_walkthrough_runs(tmp_path: Path) -> None:
    walkthrough = next(b for b in _blocks(GUIDE.read_text(encoding="utf-8")) if "status" in b)
    done = _run(walkthrough, tmp_path, 300)
    assert done.returncode == 0, done.stderr
    assert '"field": "birth_date"' in done.stdout  # the sample's one malformed row
    assert "76 settlements" in done.stdout
    assert '"rule_id":' in done.stdout  # the flags file


def test_rule_pack_guide_runs_as_written(tmp_path: Path) -> None:
    done = _run(_guide("rulepack.md"), tmp_path, 120)
    assert done.returncode == 0, done.stderr
    assert "window_days = 30" in done.stdout
    assert "field 'min_patients': 'three' is not a whole number" in done.stderr


def test_audit_guide_runs_as_written(tmp_path: Path) -> None:
    done = _run(_guide("audit.md"), tmp_path, 300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "refused (exit 2)" in done.stdout
    assert '"decision": "denied"' in done.stdout
    assert "proof holds" in done.stdout
    assert "NOT INTACT" in done.stdout and "first bad entry" in done.stdout
    assert "tampering found (exit 1)" in done.stdout
    assert "independent check: entry 5 is in the log" in done.stdout


def test_audit_guide_lists_every_dataset_a_policy_can_name() -> None:
    from fedrisk.node.datasets import DATASETS

    guide = (REPO / "docs" / "audit.md").read_text(encoding="utf-8")
    assert [d for d in DATASETS if f"`{d}`" not in guide] == []


def test_model_guide_runs_as_written(tmp_path: Path) -> None:
    done = _run(_guide("models.md"), tmp_path, 600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not a model owner this node trusts" in done.stderr
    assert "refused (exit 2)" in done.stdout
    assert "is active" in done.stdout
    assert "rolled back; no model is active" in done.stdout
    lines = done.stdout.splitlines()
    count = next(int(line) for line in reversed(lines) if line.strip().isdigit())
    assert count > 10  # the screen wrote model flags
    assert (tmp_path / "models-demo" / "table-bundle" / "model.txt").is_file()


@pytest.mark.federation
def test_privacy_guide_runs_as_written(demo_run: DemoRun, tmp_path: Path) -> None:
    """The guide's demo is the one the session already ran (the same command): the rest of
    its example runs on that demo's folder."""
    first, rest = _guide("privacy.md").split("\n", 1)
    assert first == " ".join(["fedrisk", *DEMO_ARGS, "--workdir", "/tmp/fr-privacy"])
    assert demo_run.exit_code == 0, demo_run.output
    (tmp_path / "fr-privacy").symlink_to(demo_run.root / demo_run.workdir)
    done = _run(rest, tmp_path, 300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"purpose": "monthly_pharmacy_spend"' in done.stdout
    assert '"dataset": "vault"' in done.stdout  # the identifiers the tokens were made from
    assert '"rule_id": "monthly_pharmacy_spend"' in done.stdout
    assert '"shared_groups"' in done.stdout
