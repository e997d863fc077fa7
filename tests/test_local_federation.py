"""A real local Flower federation: TLS, SuperNode authentication, the echo app, clean shutdown.

The federation cases start real processes (a SuperLink, SuperNodes, their SuperExecs and app
processes) on free localhost ports; see fedrisk.deploy.local for what each one is.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import fedrisk
from fedrisk.deploy.local import LocalFederation, config_arg
from fedrisk.deploy.pki import make_federation_pki

ECHO_APP = Path(__file__).resolve().parent / "flwr_echo"
needs_proc = pytest.mark.skipif(not Path("/proc").is_dir(), reason="process checks use /proc")


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie is dead: it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_pki_files_are_what_flower_expects(tmp_path: Path) -> None:
    pki = make_federation_pki(tmp_path, ["site-a", "site-b"])
    cert = x509.load_pem_x509_certificate(pki.tls.server_cert.read_bytes())
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    for node in pki.nodes:
        assert node.private_key.stat().st_mode & 0o777 == 0o600
        key = serialization.load_ssh_private_key(node.private_key.read_bytes(), None)
        public = serialization.load_ssh_public_key(node.public_key.read_bytes())
        assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
        assert public == key.public_key()
    assert pki.tls.server_key.stat().st_mode & 0o777 == 0o600


def test_config_values_are_quoted_for_flower() -> None:
    assert config_arg({"a": 1, "b": 2.5, "c": True, "d": "x y"}) == "a=1 b=2.5 c=true d='x y'"
    assert config_arg({"p": "it's"}) == 'p="it\'s"'
    with pytest.raises(ValueError):
        config_arg({"p": "both ' and \""})
    with pytest.raises(ValueError):
        config_arg({"bad key": 1})


@pytest.mark.federation
@needs_proc
def test_echo_over_tls_with_node_auth_and_clean_exit(tmp_path: Path) -> None:
    configs = [
        {"site-home": str(tmp_path / "site 0"), "idx": 0},
        {"site-home": str(tmp_path / "site-1"), "idx": 1},
    ]
    out = tmp_path / "replies.json"
    with LocalFederation(configs, workdir=tmp_path / "fed") as fed:
        assert "Uvicorn running on https://" in fed.superlink_log.read_text()  # TLS is on
        rogue = fed.add_node({"site-home": "/nowhere"}, register=False)
        result = fed.run(ECHO_APP, {"out": str(out), "min-nodes": 2}, timeout=120).check()

        # The unregistered key is refused; the registered nodes keep working.
        assert fed.wait_node(rogue, timeout=30) == 1
        assert fed.flower_exit_code(rogue) == 305
        assert "[code: 2004] Failed to activate SuperNode" in fed.node_log(rogue).read_text()
        online = {fed.node_id(0): "online", fed.node_id(1): "online"}
        assert fed.node_statuses() == online

        replies = json.loads(out.read_text())
        assert set(replies) == {str(fed.node_id(0)), str(fed.node_id(1))}
        for index, config in enumerate(configs):
            reply = replies[str(fed.node_id(index))]
            assert reply["node.site-home"] == config["site-home"]
            assert reply["node.idx"] == index
            # The FAB is unpacked under FLWR_HOME and put first on sys.path; the installed
            # fedrisk package is importable next to it.
            fab_dir = Path(reply["sys-path-0"])
            assert fab_dir.parent == fed.flwr_home / "apps"
            assert Path(reply["echo-module"]).parent == fab_dir
            assert reply["fedrisk-module"] == fedrisk.__file__
        assert result.seconds < 60

        started = fed.pids() | {fed.superlink_pid, fed.node_pid(0), fed.node_pid(1)}
        assert len(started) >= 6  # SuperLink, 2 SuperNodes, and a SuperExec for each
    assert not [pid for pid in started if pid is not None and _alive(pid)]
    assert fed.pids() == set()
    assert "SuperNode ID" in fed.node_log(0).read_text()  # logs stay for diagnostics


@pytest.mark.federation
@needs_proc
def test_two_federations_side_by_side_and_a_killed_node(tmp_path: Path) -> None:
    with (
        LocalFederation([{"idx": 0}], workdir=tmp_path / "a", name="fed-a") as a,
        LocalFederation([{"idx": 0}, {"idx": 1}], workdir=tmp_path / "b", name="fed-b") as b,
    ):
        ports_a = {a.superlink_port, a.node_port(0)}
        ports_b = {b.superlink_port, b.node_port(0), b.node_port(1)}
        assert not ports_a & ports_b
        assert a.node_statuses() == {a.node_id(0): "online"}
        assert set(b.node_statuses()) == {b.node_id(0), b.node_id(1)}

        before = b.pids()
        b.kill_node(0)  # a crash: the node and its process group (SuperExec) go at once
        gone = before - b.pids()
        assert b.node_pid(0) in gone and len(gone) >= 2
        assert b.node_pid(1) in b.pids()
    assert a.pids() == set() and b.pids() == set()
