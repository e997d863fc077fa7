"""Node homes: layout, secret permissions, refusal to overwrite, custom knowledge bases."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from fedrisk.models.errors import KnowledgeBaseError, NodeHomeError
from fedrisk.models.kb import default_kb_dir, load_kb
from fedrisk.node.home import init_home, open_home


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_init_creates_private_secrets_and_empty_store(tmp_path: Path) -> None:
    home = init_home(tmp_path / "n", "H1")
    assert _mode(home.secrets) == 0o700
    for name in ("pseudonym", "vault"):
        key_file = home.secrets / f"{name}.key"
        assert _mode(key_file) == 0o600
        assert len(key_file.read_bytes()) == 32
    assert home.secret("pseudonym") != home.secret("vault")
    assert _mode(home.vault) == 0o600
    assert home.store.is_file()
    reopened = open_home(tmp_path / "n")
    assert reopened.site_id == "H1"
    assert reopened.kb_path is None


def test_two_homes_get_different_secrets(tmp_path: Path) -> None:
    a = init_home(tmp_path / "a", "A")
    b = init_home(tmp_path / "b", "B")
    assert a.secret("pseudonym") != b.secret("pseudonym")


def test_init_refuses_an_existing_home(tmp_path: Path) -> None:
    home = init_home(tmp_path / "n", "H1")
    key = home.secret("pseudonym")
    with pytest.raises(NodeHomeError, match="already a node home"):
        init_home(tmp_path / "n", "H1")
    assert home.secret("pseudonym") == key


@pytest.mark.parametrize("bad", ["", "has space", "x" * 65, "../escape"])
def test_init_refuses_bad_site_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(NodeHomeError, match="site id"):
        init_home(tmp_path / "n", bad)


def test_open_refuses_a_folder_that_is_not_a_home(tmp_path: Path) -> None:
    with pytest.raises(NodeHomeError, match="not a node home"):
        open_home(tmp_path)


def test_custom_knowledge_base_is_used(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    shutil.copytree(default_kb_dir(), kb_dir)
    with (kb_dir / "services.csv").open("a", encoding="utf-8") as handle:
        handle.write("S999999999,自定义服务 custom service,,,,1,10.00\n")
    home = init_home(tmp_path / "n", "H1", kb_dir)
    kb = open_home(tmp_path / "n").knowledge_base()
    assert "S999999999" in kb.services
    assert kb.version != load_kb().version
    assert home.kb_path == kb_dir.resolve()


def test_broken_knowledge_base_is_refused_naming_row_and_field(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    shutil.copytree(default_kb_dir(), kb_dir)
    text = (kb_dir / "drugs.csv").read_text(encoding="utf-8").splitlines()
    fields = text[3].split(",")
    fields[4] = "many"  # max_units
    text[3] = ",".join(fields)
    (kb_dir / "drugs.csv").write_text("\n".join(text) + "\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match=r"drugs.csv row 4, field 'max_units'"):
        init_home(tmp_path / "n", "H1", kb_dir)
    assert not (tmp_path / "n").exists()


def test_default_kb_has_the_contract_columns_and_content() -> None:
    kb = load_kb()
    contract_kb = Path(__file__).resolve().parents[2] / "shared" / "contract" / "kb"
    if contract_kb.is_dir():
        assert load_kb(contract_kb).version == kb.version
    assert kb.drugs["XA10BJ06001"].monitored
    assert kb.services["S331302001"].gender == "F"
    pair = kb.interaction("XM01AE01001", "XB01AA03001")
    assert pair is not None and pair.severity == "warn"
