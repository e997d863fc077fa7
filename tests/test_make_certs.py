"""deploy/make_certs.py: the CA, the SuperLink certificate and SuperNode keys for real hosts."""

from __future__ import annotations

import ipaddress
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_ssh_private_key, load_ssh_public_key

from fedrisk.deploy.make_certs import main

NODES = ("H33010000", "P33010701")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One run of the documented command line, in a subprocess; its folder and its output."""
    out = tmp_path_factory.mktemp("certs") / "pki"
    argv = [sys.executable, "-m", "fedrisk.deploy.make_certs", "--out", str(out)]
    argv += ["--superlink-host", "SuperLink.Bureau.example", "--superlink-ip", "10.0.8.20"]
    argv += ["--nodes", *NODES]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return out, done.stdout


def test_writes_every_file_private_ones_0600(pki: tuple[Path, str]) -> None:
    out, _ = pki
    private = [out / "tls" / "ca.key", out / "tls" / "superlink.key"]
    private += [out / "nodes" / f"{name}.key" for name in NODES]
    public = [out / "tls" / "ca.crt", out / "tls" / "superlink.crt"]
    public += [out / "nodes" / f"{name}.key.pub" for name in NODES]
    for path in private:
        assert _mode(path) == 0o600, path
    for path in public:
        assert path.is_file(), path
    for folder in (out, out / "tls", out / "nodes"):
        assert _mode(folder) == 0o700, folder


def test_superlink_certificate_names_the_host_the_ip_and_loopback(pki: tuple[Path, str]) -> None:
    out, _ = pki
    cert = x509.load_pem_x509_certificate((out / "tls" / "superlink.crt").read_bytes())
    ca = x509.load_pem_x509_certificate((out / "tls" / "ca.crt").read_bytes())
    cert.verify_directly_issued_by(ca)
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"superlink.bureau.example", "localhost"}
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("10.0.8.20"),
        ipaddress.ip_address("127.0.0.1"),  # the SuperLink's own ServerApp processes dial it
    }


def test_node_keys_are_openssh_ecdsa_p384_pairs(pki: tuple[Path, str]) -> None:
    out, _ = pki
    for name in NODES:
        text = (out / "nodes" / f"{name}.key.pub").read_text()
        assert text.startswith("ecdsa-sha2-nistp384 "), text
        public = load_ssh_public_key(text.encode())
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert isinstance(public.curve, ec.SECP384R1)
        private = load_ssh_private_key((out / "nodes" / f"{name}.key").read_bytes(), None)
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        assert private.public_key().public_numbers() == public.public_numbers()


def test_prints_where_each_file_goes(pki: tuple[Path, str]) -> None:
    out, stdout = pki
    assert f"{out / 'tls' / 'superlink.key'}  -> /etc/fedrisk/tls/superlink.key" in stdout
    for name in NODES:
        assert f"/etc/fedrisk/keys/{name}.key" in stdout
        assert f"flwr supernode register {out / 'nodes' / f'{name}.key.pub'}" in stdout


def test_refuses_to_overwrite(pki: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = pki
    before = (out / "tls" / "ca.key").read_bytes()
    args = ["--out", str(out), "--superlink-host", "other.example", "--nodes", "X1"]
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (out / "tls" / "ca.key").read_bytes() == before
    assert not (out / "nodes" / "X1.key").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["--superlink-host", "bad_host", "--nodes", "H1"],
        ["--superlink-host", "ok.example", "--superlink-ip", "10.0.0.999", "--nodes", "H1"],
        ["--superlink-host", "ok.example", "--nodes", "H1", "H1"],
        ["--superlink-host", "ok.example", "--nodes", "../H1"],
    ],
)
def test_rejects_bad_arguments_before_writing(tmp_path: Path, args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "pki"), *args])
    assert exit_info.value.code == 2
    assert not (tmp_path / "pki").exists()
