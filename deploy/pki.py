"""Key material of a local Flower federation, written as files the Flower processes read.

- a CA and the SuperLink's TLS certificate (through :mod:`fedrisk.crypto.certs`), valid for
  ``127.0.0.1`` and ``localhost``: SuperNodes and the ``flwr`` CLI check it against the CA;
- per SuperNode an ECDSA P-384 key pair in OpenSSH format: the SuperLink admits a SuperNode
  only if its public key was registered (``flwr supernode register``) and it proves holding
  the private key (``flower-supernode --auth-supernode-private-key``).

Private keys are written 0600 and unencrypted (the Flower processes read them unattended).
This is demo/test material: production sites bring their own PKI (see deploy/README.md).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fedrisk.crypto.certs import issue, make_ca

# The SuperNodes and the CLI dial 127.0.0.1; `localhost` is there for people and tools.
LOCAL_HOSTS = ("127.0.0.1", "localhost")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for the SuperLink's TLS: the CA and the server's certificate and key."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


@dataclass(frozen=True)
class NodeKey:
    """A SuperNode's authentication key pair (OpenSSH format, ECDSA P-384)."""

    name: str
    private_key: Path
    public_key: Path


@dataclass(frozen=True)
class FederationPki:
    """Everything a local federation needs: TLS files and one key pair per SuperNode."""

    tls: TlsFiles
    nodes: tuple[NodeKey, ...]


def make_tls(directory: Path, hosts: tuple[str, ...] = LOCAL_HOSTS) -> TlsFiles:
    """Write a fresh CA and a SuperLink server certificate for ``hosts`` into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = make_ca("fedrisk local federation CA")
    server = issue(ca, "fedrisk-superlink", hosts=hosts)
    files = TlsFiles(
        ca_cert=directory / "ca.crt",
        ca_key=directory / "ca.key",
        server_cert=directory / "superlink.crt",
        server_key=directory / "superlink.key",
    )
    files.ca_cert.write_bytes(ca.cert_pem)
    _write_private(files.ca_key, ca.key_pem)
    files.server_cert.write_bytes(server.cert_pem)
    _write_private(files.server_key, server.key_pem)
    return files


def make_node_key(directory: Path, name: str) -> NodeKey:
    """Write a SuperNode key pair ``<name>.key`` (0600) and ``<name>.key.pub`` into directory."""
    if not _NAME.match(name):
        raise ValueError(f"node key name {name!r}: use letters, digits, '.', '_', '-'")
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP384R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    pair = NodeKey(name, directory / f"{name}.key", directory / f"{name}.key.pub")
    _write_private(pair.private_key, private)
    # The comment after the key names the node for whoever reads the file; Flower ignores it.
    pair.public_key.write_bytes(public + b" " + name.encode() + b"\n")
    return pair


def make_federation_pki(directory: Path, node_names: Iterable[str]) -> FederationPki:
    """TLS files under ``directory/tls`` and node keys under ``directory/nodes``."""
    tls = make_tls(directory / "tls")
    nodes = tuple(make_node_key(directory / "nodes", name) for name in node_names)
    return FederationPki(tls=tls, nodes=nodes)


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by the owner only, from the first byte on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, 0o600)  # an existing file keeps its old mode otherwise
        file.write(data)
